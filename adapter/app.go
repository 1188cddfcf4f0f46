package adapter

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/console"
	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/dequeue"
	"github.com/exportbridge/exportbridge/exporter"
	"github.com/exportbridge/exportbridge/hub"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/version"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
	"github.com/exportbridge/exportbridge/telemetry"
)

// ErrAddrInUse: the HTTP address is taken (a daemon is probably running).
var ErrAddrInUse = errors.New("address in use")

// AppOptions choose what an App runs.
type AppOptions struct {
	Schedule bool // run the cron scheduler (the daemon)
	// HTTPOptional: when the listen address is taken, run without the HTTP
	// server instead of failing (export-now beside a running daemon, which
	// then serves the download links from the same files). The daemon's
	// leases are left alone either way: only expired leases are rescued.
	HTTPOptional bool
	Registry     *prometheus.Registry // default: a new registry
	// Failpoint, for the crash tests only, kills the process at that point.
	Failpoint Failpoint
	// Listener, when set, is the HTTP server's (tests hand one in instead
	// of an address that might be taken by the time it is used).
	Listener net.Listener
	// Telemetry adds options to the tracer provider (tests: an in-memory
	// exporter).
	Telemetry []telemetry.Option
}

// App is the wired product: simulator (demo), store, HTTP server, publisher,
// runner, retention sweeper and scheduler. Start brings them up in that
// order; Stop takes them down in reverse under one deadline.
type App struct {
	cfg     *Config
	log     zerolog.Logger
	opts    AppOptions
	Store   store.Store
	Pub     *publish.Publisher
	Runner  *pipeline.Runner
	Sched   *Scheduler
	Metrics *Metrics
	Sim     *finopssim.Server
	// Tracer is where spans go: a no-op provider unless [telemetry] is on.
	Tracer *telemetry.Provider
	signer *files.Signer
	// links mints DownloadURLs: the signer, or the object store's presigner.
	links publish.URLMinter
	// Files is where converted files are kept (the local disk for now).
	Files files.Storage
	// Subscriptions is the registry the publisher follows and the runner
	// routes by; the configuration fills it at start.
	Subscriptions *publish.Registry
	reg           *prometheus.Registry
	httpSrv       *http.Server
	HTTPUp        bool

	loaded   Config                         // as read, before start filled in bound addresses: what a reload compares
	keys     *access.Keyring                // the API's tokens
	follower *subscriptionFollower          // keeps Subscriptions equal to config and store
	finops   map[string]*finops.Client      // by connection name, for readiness
	wake     *hub.Broadcaster               // tells streams that events were committed
	fatal    chan error                     // a component found the process cannot go on (the store lost)
	api      atomic.Pointer[http.Handler]   // /api, once everything it uses exists
	page     atomic.Pointer[http.Handler]   // the operations page, likewise
	jobList  atomic.Pointer[[]adminapi.Job] // the jobs the API lists; a reload replaces them
	// Instance names this process on the leases it takes in the store:
	// host, pid and a random part, unique among the processes sharing it.
	Instance string

	bg       context.Context // lives until Stop: background work (API-started runs)
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup
	stops    []func(context.Context) error
	stopOnce sync.Once
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// openStorage returns the converted files' storage cfg names and, for an
// object store, its link minter (nil for local files: the signer mints
// them). With an object store, receivers fetch from it: presigned links
// (S3), or read-only SAS links (Azure).
func openStorage(ctx context.Context, cfg files.Config) (files.Storage, publish.URLMinter, error) {
	switch cfg.Driver {
	case "s3":
		s3, err := files.NewS3(ctx, cfg.S3, cfg.URLTTL)
		if err != nil {
			return nil, nil, err
		}
		return s3, s3, nil
	case "azblob":
		az, err := files.NewAzblob(cfg.Azblob, cfg.URLTTL)
		if err != nil {
			return nil, nil, err
		}
		return az, az, nil
	}
	return files.Local{Dir: cfg.Dir}, nil, nil
}

// render renders every attempt's body: raised events by the hub's
// contract, the rest (DataExport) by theirs.
func render(ev store.Event, url string, expires time.Time) ([]byte, error) {
	if hub.IsRaised(ev) {
		return hub.Render(ev), nil
	}
	return dataexport.Render(ev, url, expires)
}

// StartApp builds and starts everything. On error, what was started is
// stopped again.
func StartApp(ctx context.Context, cfg *Config, log zerolog.Logger, opts AppOptions) (_ *App, err error) {
	a := &App{cfg: cfg, loaded: *cfg, log: log, opts: opts, reg: opts.Registry, fatal: make(chan error, 1), Instance: newInstanceID()}
	log = log.With().Str("instance", a.Instance).Logger()
	a.log = log
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	if a.keys, err = cfg.keyring(); err != nil {
		return nil, err
	}
	if a.Tracer, err = telemetry.Start(ctx, cfg.Telemetry, version.String(), opts.Telemetry...); err != nil {
		return nil, err
	}
	// Stopped last: what the others trace while they stop is sent too.
	a.stops = append(a.stops, a.Tracer.Shutdown)
	a.bg, a.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			a.bgCancel() // no run can have started from the API yet
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
			defer cancel()
			_ = a.Stop(sctx)
		}
	}()
	if cfg.Simulator.Enabled {
		if err := a.startSimulator(ctx); err != nil {
			return nil, err
		}
	}
	if err := checkStoreNotLost(cfg); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	a.Store = st
	if !a.keys.Empty() {
		// Tokens created through the API, once some configured token can
		// create them.
		a.keys.Lookup = func(r *http.Request, hash [32]byte) (string, []string, bool, error) {
			t, err := st.TokenByHash(r.Context(), hash[:])
			if errors.Is(err, store.ErrNotFound) {
				return "", nil, false, nil
			}
			return t.Name, t.Scopes, err == nil, err
		}
	}
	a.stops = append(a.stops, func(context.Context) error { return st.Close() })
	a.watchStore(ctx)

	if a.Subscriptions, a.follower, err = followSubscriptions(ctx, cfg, st, log); err != nil {
		return nil, err
	}
	followCtx, followCancel := context.WithCancel(context.WithoutCancel(ctx))
	followDone := make(chan struct{})
	go func() { defer close(followDone); a.follower.run(followCtx, cfg.Hub.PollInterval) }()
	a.stops = append(a.stops, func(context.Context) error { followCancel(); <-followDone; return nil })
	a.Metrics = NewMetrics(a.reg, st.Counts)
	storage, links, err := openStorage(ctx, cfg.Files)
	if err != nil {
		return nil, err
	}
	a.Files, a.links = storage, links

	// Bind the HTTP address before the signer is made: with port 0 the
	// public URL of the download links is known only once bound.
	ln, err := a.listen()
	if err != nil && !(opts.HTTPOptional && errors.Is(err, ErrAddrInUse)) {
		return nil, err
	}
	key, err := files.SigningKey(ctx, cfg.Files.SigningKey, st)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	a.signer = files.NewSigner(key, cfg.Server.PublicURL, cfg.Files.URLTTL)
	if a.links == nil {
		a.links = a.signer // files served by this process's download handler
	}

	// The HTTP server starts before the publisher and stops after it:
	// receivers fetch DownloadURLs while deliveries drain.
	if ln != nil {
		a.startHTTP(ln)
	} else {
		log.Info().Str("listen", cfg.Server.Listen).Msg("address in use (is the daemon running?): its server will serve the download links")
	}
	a.Pub = publish.New(publish.Config{Owner: a.Instance, LeaseTTL: cfg.Store.LeaseTTL}, st, a.Subscriptions, a.links, log,
		publish.WithObserver(a.Metrics), publish.WithRenderer(render), publish.WithAttemptHook(func() { opts.Failpoint.reached(fpDuringDeliver) }),
		publish.WithTracerProvider(a.Tracer))
	a.wake = hub.NewBroadcaster()
	committed := func() { a.Pub.Notify(); a.wake.Notify() }
	// Other processes' commits, replays and resumes wake this one at once
	// where the store can say so (PostgreSQL); polling is the backstop.
	if l, ok := st.(interface {
		Listen(ctx context.Context, wake func(), log func(error))
	}); ok {
		listenCtx, listenCancel := context.WithCancel(context.WithoutCancel(ctx))
		listenDone := make(chan struct{})
		listenLog := log.With().Str("component", "store").Logger()
		go func() {
			defer close(listenDone)
			l.Listen(listenCtx, committed, func(err error) {
				listenLog.Warn().Err(err).Msg("listening for other processes' commits failed; reconnecting (polling covers meanwhile)")
			})
		}()
		a.stops = append(a.stops, func(context.Context) error { listenCancel(); <-listenDone; return nil })
	}
	jobs, err := a.jobs(log)
	if err != nil {
		return nil, err
	}
	list := apiJobs(cfg.Jobs)
	a.jobList.Store(&list)
	rcfg := pipeline.Config{Instance: a.Instance, LeaseTTL: cfg.Store.LeaseTTL, WorkDir: cfg.Files.WorkDir, QuarantineDir: cfg.Quarantine.Dir, Convert: cfg.Convert}
	if a.Runner, err = pipeline.NewRunner(rcfg, jobs, st, a.Files, a.Subscriptions, committed, a.Metrics, log,
		pipeline.WithFailpoint(opts.Failpoint.reached), pipeline.WithTracerProvider(a.Tracer)); err != nil {
		return nil, err
	}
	if opts.Schedule {
		if a.Sched, err = NewScheduler(cfg, a.Runner, log); err != nil {
			return nil, err
		}
	}
	// The last successful run of each job, from the history, so the gauge
	// means the same after a restart.
	for _, j := range cfg.Jobs {
		runs, err := st.Runs(ctx, j.Name, 50)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			if r.Outcome == "ok" {
				a.Metrics.LastSuccess(j.Name, r.FinishedAt)
				break
			}
		}
	}
	a.Metrics.SubscriptionStates(func(ctx context.Context) (map[string]string, error) {
		paused, err := st.Paused(ctx)
		if err != nil {
			return nil, err
		}
		circuits := a.Pub.Circuits()
		out := map[string]string{}
		for _, s := range a.Subscriptions.Subscriptions() {
			switch {
			case hasKey(paused, s.Name):
				out[s.Name] = SubscriptionPaused
			case circuits[s.Name].State == publish.CircuitOpen:
				out[s.Name] = SubscriptionOpen
			default:
				out[s.Name] = SubscriptionActive
			}
		}
		return out, nil
	})
	if err := a.Pub.Start(ctx); err != nil {
		return nil, err
	}
	a.stops = append(a.stops, a.Pub.Stop)
	// Runs started from the API stop before the publisher and the store they
	// write to, and within the shutdown deadline like everything else.
	a.stops = append(a.stops, a.stopBackground)

	sweepCtx, sweepCancel := context.WithCancel(context.WithoutCancel(ctx))
	sweeper := files.NewSweeper(st, a.Files, cfg.Files, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sweeper.Run(sweepCtx, min(time.Hour, max(cfg.Files.Retention/24, time.Minute)))
	}()
	a.stops = append(a.stops, func(context.Context) error { sweepCancel(); <-done; return nil })

	recCtx, recCancel := context.WithCancel(context.WithoutCancel(ctx))
	recDone := make(chan struct{})
	records := recordSweeper{st: st, attempts: cfg.Store.AttemptRetention, keys: 24 * time.Hour, log: log.With().Str("component", "sweeper").Logger()}
	go func() { defer close(recDone); records.run(recCtx, time.Hour) }()
	a.stops = append(a.stops, func(context.Context) error { recCancel(); <-recDone; return nil })

	if !a.keys.Empty() {
		mux := http.NewServeMux()
		hb := a.hubHandler(st, committed)
		hb.Register(mux)
		api := a.adminAPI()
		mux.Handle("/api/", api.Handler(a.keys))
		h := http.Handler(mux)
		a.api.Store(&h)
		page := http.NewServeMux()
		console.New(cfg.Console, console.Options{API: api.Routes(), Stream: hb.Stream(), Keys: a.keys, Sessions: st,
			PublicURL: cfg.Server.PublicURL, Log: log}).Register(page)
		p := http.Handler(page)
		a.page.Store(&p)
	}
	if a.Sched != nil {
		a.Sched.Start(ctx)
		a.stops = append(a.stops, a.Sched.Stop)
	}
	return a, nil
}

func (a *App) startSimulator(ctx context.Context) error {
	simCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan error, 1)
	done := make(chan struct{})
	opt := SimOptions{Listen: a.cfg.Simulator.Listen, DemoActivity: simActivities(a.cfg),
		Sim: finopssim.Config{EnqueueEvery: a.cfg.Simulator.EnqueueEvery, Rows: a.cfg.Simulator.Rows, ExportPolls: 2}}
	opt.OnReady = func(_ string, sim *finopssim.Server) { a.Sim = sim; ready <- nil }
	go func() {
		defer close(done)
		if err := RunSimulator(simCtx, opt, a.log); err != nil {
			select {
			case ready <- err:
			default:
			}
		}
	}()
	if err := <-ready; err != nil {
		cancel()
		if a.opts.HTTPOptional && errors.Is(err, syscall.EADDRINUSE) {
			// The daemon runs the demo simulator already; use that one.
			a.log.Info().Str("listen", a.cfg.Simulator.Listen).Msg("simulator address in use: using the running one")
			return nil
		}
		return fmt.Errorf("simulator: %w", err)
	}
	a.stops = append(a.stops, func(context.Context) error { cancel(); <-done; return nil })
	return nil
}

// listen binds the HTTP address (AppOptions.Listener when given). With port
// 0 a free port is chosen, and server.listen (and public_url, when it was
// left to default) become the bound address.
func (a *App) listen() (net.Listener, error) {
	ln := a.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Server.Listen); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("%w: %s", ErrAddrInUse, a.cfg.Server.Listen)
			}
			return nil, fmt.Errorf("listen %s: %w", a.cfg.Server.Listen, err)
		}
	}
	if _, port, _ := net.SplitHostPort(a.cfg.Server.Listen); port == "0" {
		bound := ln.Addr().String()
		if a.cfg.Server.PublicURL == "http://"+a.cfg.Server.Listen {
			a.cfg.Server.PublicURL = "http://" + bound
		}
		a.cfg.Server.Listen = bound
	}
	return ln, nil
}

func (a *App) startHTTP(ln net.Listener) {
	sc := a.cfg.Server
	ln = netutil.LimitListener(ln, sc.MaxConnections)
	a.httpSrv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: sc.ReadHeaderTimeout, IdleTimeout: sc.IdleTimeout,
		MaxHeaderBytes: sc.MaxHeaderBytes}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error().Err(err).Msg("HTTP server failed")
		}
	}()
	a.HTTPUp = true
	a.log.Info().Str("component", "http").Str("listen", ln.Addr().String()).Str("public_url", a.cfg.Server.PublicURL).Msg("HTTP server listening")
	a.stops = append(a.stops, func(ctx context.Context) error {
		err := a.httpSrv.Shutdown(ctx)
		<-done
		return err
	})
}

// jobs turns the configured jobs into the runner's: the one place that
// knows the kinds of job, each with its Source, over one FinOps client per
// connection.
func (a *App) jobs(log zerolog.Logger) ([]pipeline.Job, error) {
	clients := map[string]*finops.Client{}
	for name, cc := range a.cfg.Connections {
		c, err := finops.New(cc, log, finops.WithTracerProvider(a.Tracer))
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", name, err)
		}
		clients[name] = c
	}
	a.finops = clients
	return a.pipelineJobs(a.cfg.Jobs), nil
}

// pipelineJobs turns jobs into the runner's, over this process's FinOps
// clients.
func (a *App) pipelineJobs(jobs []JobConfig) []pipeline.Job {
	clients := a.finops
	var out []pipeline.Job
	for _, j := range jobs {
		poll := func(result string) { a.Metrics.Poll(j.Name, result) }
		pj := pipeline.Job{Name: j.Name, Kind: j.Kind, LegalEntity: j.LegalEntity, Encoding: j.Encoding, MaxMessages: j.MaxMessages,
			Changes: pipeline.Changes{Keys: j.Changes, EmptyEvent: j.ChangesEmptyEvent, InitialInserts: j.ChangesInitial == "inserts"}}
		switch j.Kind {
		case KindDequeue:
			q := dequeue.Queue{Src: dequeue.New(clients[j.Connection], j.ActivityID), Job: j.Name, LegalEntity: j.LegalEntity, Poll: poll}
			pj.NewSource = func(zerolog.Logger, func() *store.JobLease) pipeline.Source { return q }
		case KindPackageExport:
			exp := exporter.New(clients[j.Connection])
			ej := exporter.Job{Name: j.Name, DefinitionGroup: j.DefinitionGroup, LegalEntity: j.LegalEntity, PollInterval: j.PollInterval, Timeout: j.Timeout}
			pj.NewSource = func(log zerolog.Logger, lease func() *store.JobLease) pipeline.Source {
				return &exporter.Source{Exp: exp, Ledger: a.Store, Job: ej, Lease: lease, Now: time.Now, Poll: poll,
					Polled: func() { a.opts.Failpoint.reached(fpWhilePolling) }, Log: log}
			}
		}
		out = append(out, pj)
	}
	return out
}

// stopBackground cancels runs started from the API and waits for them
// until ctx ends.
func (a *App) stopBackground(ctx context.Context) error {
	a.bgCancel()
	done := make(chan struct{})
	go func() { a.bgWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runs started from the API still going at the deadline: %w", ctx.Err())
	}
}

// storeCheckInterval is how often the daemon confirms its database is still
// the file it opened.
const storeCheckInterval = time.Second

// watchStore checks the store every storeCheckInterval; when its database
// was deleted or replaced it reports a fatal error (the daemon exits, its
// supervisor restarts it). Commits and acks check it themselves as well.
func (a *App) watchStore(ctx context.Context) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(storeCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if err := a.Store.Ping(wctx); errors.Is(err, store.ErrLost) {
				a.log.Error().Str("component", "store").Err(err).Msg("the database is gone: nothing more is acknowledged; stopping")
				select {
				case a.fatal <- err:
				default:
				}
				return
			}
		}
	}()
	a.stops = append(a.stops, func(context.Context) error { cancel(); <-done; return nil })
}

// newInstanceID returns "host/pid/random".
func newInstanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// Fatal reports an error after which the process must stop.
func (a *App) Fatal() <-chan error { return a.fatal }

// checkStoreNotLost refuses to create a new, empty database beside converted
// files: they belong to a database that was lost or moved, and starting
// afresh would orphan them and forget every message processed.
func checkStoreNotLost(cfg *Config) error {
	if cfg.Store.Driver != "sqlite" {
		return nil // a server's database is not a file that can vanish beside the files
	}
	if _, err := os.Stat(cfg.Store.DSN); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	entries, err := os.ReadDir(cfg.Files.Dir)
	if err != nil || len(entries) == 0 {
		return nil
	}
	return fmt.Errorf("store: database %s does not exist, but %s holds %d converted package(s) that belong to one: "+
		"restore the database (or fix store.dsn), or move %s away to start afresh: %w",
		cfg.Store.DSN, cfg.Files.Dir, len(entries), cfg.Files.Dir, store.ErrLost)
}

// Stop stops every component in reverse start order under ctx's deadline.
// It is idempotent.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	a.stopOnce.Do(func() {
		for i := len(a.stops) - 1; i >= 0; i-- {
			if err := a.stops[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Run runs the daemon until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg *Config, log zerolog.Logger, fp Failpoint, reloads <-chan ReloadFunc) error {
	a, err := StartApp(ctx, cfg, log, AppOptions{Schedule: true, Failpoint: fp})
	if err != nil {
		return err
	}
	log.Info().Int("jobs", len(cfg.Jobs)).Int("subscriptions", len(cfg.Subscriptions)).Msg("exportbridge running")
	var fatal error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case fatal = <-a.Fatal():
			break wait
		case load := <-reloads:
			next, err := load()
			if err != nil {
				log.Error().Err(err).Msg("reload: the configuration has problems; still running on the previous one")
				continue
			}
			restart, err := a.Reload(ctx, next)
			switch {
			case err != nil:
				log.Error().Err(err).Msg("reload failed; still running on the previous configuration")
			case len(restart) > 0:
				log.Warn().Strs("changed", restart).Msg("reload: these settings need a restart; draining and exiting (a supervisor starts the new configuration)")
				break wait
			default:
				log.Info().Str("log_level", next.Log.Level).Int("subscriptions", len(next.Subscriptions)).Msg("configuration reloaded")
			}
		}
	}
	log.Info().Str("deadline", cfg.Server.ShutdownTimeout.String()).Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
	err = a.Stop(sctx)
	switch {
	case fatal != nil:
		return fatal // what stopped the daemon matters more than how it stopped
	case err != nil && !onlyReleased(err):
		return fmt.Errorf("shutdown: %w", err)
	case err != nil:
		// A drain cut short by the deadline is the designed outcome: the
		// unfinished attempts are back in the store and will be sent again.
		log.Warn().Err(err).Msg("stopped at the deadline")
		return nil
	}
	log.Info().Msg("stopped")
	return nil
}

// ReloadFunc reads the configuration again (SIGHUP).
type ReloadFunc func() (*Config, error)

// reloadable are the sections a running daemon takes over without a
// restart; a change anywhere else drains it and exits, so its supervisor
// starts the new configuration.
var reloadable = map[string]bool{"log": true, "subscriptions": true, "jobs": true}

// Reload applies next where it can (the log level, the config file's
// subscriptions, the jobs: their next runs take the new definitions and
// schedules) and returns, without applying anything, the sections whose
// change needs a restart.
func (a *App) Reload(ctx context.Context, next *Config) (restart []string, err error) {
	cur, nxt := reflect.ValueOf(a.loaded), reflect.ValueOf(*next)
	for i := range cur.NumField() {
		f := cur.Type().Field(i)
		name := strings.Split(f.Tag.Get("koanf"), ",")[0]
		if reloadable[name] {
			continue
		}
		if !sameSettings(cur.Field(i), nxt.Field(i)) {
			restart = append(restart, name)
		}
	}
	if len(restart) > 0 {
		return restart, nil
	}
	if err := SetLogLevel(next.Log.Level); err != nil {
		return nil, err
	}
	if a.Sched != nil {
		if err := a.Sched.Reschedule(next.Jobs); err != nil {
			return nil, err
		}
	}
	a.Runner.SetJobs(a.pipelineJobs(next.Jobs))
	list := apiJobs(next.Jobs)
	a.jobList.Store(&list)
	if err := a.follower.setConfigured(ctx, next.Subscriptions); err != nil {
		return nil, err
	}
	a.cfg.Log, a.cfg.Subscriptions, a.cfg.Jobs = next.Log, next.Subscriptions, next.Jobs
	a.loaded.Log, a.loaded.Subscriptions, a.loaded.Jobs = next.Log, next.Subscriptions, next.Jobs
	return nil, nil
}

// sameSettings compares two config values, ignoring functions (hooks the
// code sets, such as a converter's CreateTemp, which never compare equal).
func sameSettings(a, b reflect.Value) bool {
	if a.Kind() != reflect.Struct {
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
	for i := range a.NumField() {
		if a.Field(i).Kind() == reflect.Func || !a.Type().Field(i).IsExported() {
			continue
		}
		if !sameSettings(a.Field(i), b.Field(i)) {
			return false
		}
	}
	return true
}

// onlyReleased reports whether every error in err is the publisher's
// deadline release (safe), and not a real failure to shut down.
func onlyReleased(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyReleased(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, publish.ErrStopDeadline)
}
