package adapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/hub"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// DemoReceiverPath is the built-in sample receiver's path (simulator mode).
const DemoReceiverPath = "/demo/receiver"

// Handler returns the daemon's HTTP routes.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(files.Pattern, files.NewHandler(a.signer, a.Store, a.Files, a.cfg.Files.MaxRanges, a.log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		adminapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	// OpenMetrics when the scraper asks for it: the only format with exemplars.
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	if !a.keys.Empty() {
		// The server is up before the runner and the publisher exist: /api
		// answers 503 until StartApp has built it.
		api := func(w http.ResponseWriter, r *http.Request) {
			api := a.api.Load()
			if api == nil {
				adminapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "starting"})
				return
			}
			(*api).ServeHTTP(w, r)
		}
		mux.HandleFunc("/api/", api)
		mux.HandleFunc("/ServerEvents", api) // Volt MX clients
		mux.HandleFunc("/ServerEvents/", api)
		// The operations page has every path the others leave.
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			page := a.page.Load()
			if page == nil {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			(*page).ServeHTTP(w, r)
		})
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "exportbridge: the operations page and /api are off: set server.admin_token or add [[tokens]] to the configuration.")
		})
	}
	if a.cfg.Simulator.Enabled {
		mux.Handle("POST "+DemoReceiverPath, newDemoReceiver(a.Subscriptions.Subscriptions(), a.log))
	}
	return mux
}

// bodyAsSent is an event's body as receivers get it, less the DownloadURL
// (minted per attempt); the stored body where it cannot be rendered.
func bodyAsSent(ev store.Event) []byte {
	if b, err := render(ev, "", time.Time{}); err == nil {
		return b
	}
	return ev.Body
}

// configTokenViews lists the configured tokens' names and scopes (values
// dropped).
func (c *Config) configTokenViews() []access.Token {
	var out []access.Token
	for _, t := range c.Tokens {
		out = append(out, access.Token{Name: t.Name, Scopes: t.Scopes})
	}
	if c.Server.AdminToken != "" {
		out = append(out, access.Token{Name: "admin", Scopes: []string{access.ScopeAdmin}})
	}
	return out
}

// hubHandler is the event hub over the store and the registry.
func (a *App) hubHandler(st store.Store, committed func()) *hub.Hub {
	raiser := &hub.Raiser{Store: st, Committed: committed, Route: func(ev store.Event) []string {
		return publish.Subscribers(a.Subscriptions.Subscriptions(), ev)
	}}
	renderOther := func(ctx context.Context, ev store.Event) ([]byte, error) {
		url, expires := "", time.Time{}
		if ev.ArtifactID != "" {
			if art, err := st.Artifact(ctx, ev.ArtifactID); err == nil && art.DeletedAt.IsZero() {
				expires = time.Now().Add(a.links.TTL())
				if url, err = a.links.Link(ctx, *art, expires); err != nil {
					return nil, err
				}
			}
		}
		return dataexport.Render(ev, url, expires)
	}
	h := hub.New(a.cfg.Hub, raiser, st, renderOther, a.keys, a.wake, a.log)
	h.Obs = a.Metrics
	return h
}

// adminAPI is /api over this process's store, runner and publisher.
func (a *App) adminAPI() *adminapi.API {
	api := &adminapi.API{Store: a.Store, Runner: a.Runner, Publisher: a.Pub, Subscriptions: a.Subscriptions,
		Log: a.log.With().Str("component", "api").Logger(), Background: a.background,
		Stored: a.Store, Configured: a.follower.configuredName, SubscriptionHosts: a.cfg.Server.SubscriptionHosts,
		StoredTokens: a.Store, ConfigTokens: a.cfg.configTokenViews(),
		LogLevel: func() string { return zerolog.GlobalLevel().String() }, SetLogLevel: SetLogLevel, Readiness: a.readiness, Body: bodyAsSent,
		Reload: func(ctx context.Context) {
			if err := a.follower.reload(ctx); err != nil {
				a.log.Error().Err(err).Msg("reloading subscriptions failed; the change applies at the next poll")
			}
		}}
	api.Jobs = func() []adminapi.Job { return *a.jobList.Load() }
	if a.Sched != nil {
		api.NextRun = a.Sched.Next
	}
	return api
}

// background runs fn until it returns or the app stops (stopBackground).
func (a *App) background(fn func(ctx context.Context)) {
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		fn(a.bg)
	}()
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	checks, ok := a.readiness(r.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	adminapi.WriteJSON(w, status, checks)
}

// readiness checks the store, the storage, the scheduler, each FinOps
// connection and each job's environment: "ok", or what is wrong.
func (a *App) readiness(ctx context.Context) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := storeReady(ctx, a.Store, a.Files, checks)
	fail := func(key, msg string) { checks[key], ok = msg, false }
	if a.opts.Schedule {
		checks["scheduler"] = "ok"
		if a.Sched == nil || !a.Sched.Running() {
			fail("scheduler", "not running")
		}
	}
	for name, c := range a.finops {
		h, key := c.Health(), "connection:"+name
		checks[key] = "ok"
		if h.ConsecutiveFailures >= a.cfg.Connections[name].UnreadyAfter {
			fail(key, fmt.Sprintf("%d calls in a row failed; last at %s: %s", h.ConsecutiveFailures,
				h.LastErrorAt.UTC().Format(time.RFC3339), redact.String(h.LastError)))
		}
	}
	if a.Runner != nil {
		for job, msg := range a.Runner.EnvironmentFaults() {
			fail("job:"+job, msg)
		}
	}
	return checks, ok
}

// storeReady checks the store and the files storage into checks: "ok" or
// what is wrong; the process that only reads the store (the CLI's) checks
// these two, the daemon more.
func storeReady(ctx context.Context, st interface{ Ping(context.Context) error }, storage files.Storage, checks map[string]string) bool {
	ok := true
	checks["store"] = "ok"
	if err := st.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	checks["storage"] = "ok"
	if err := storage.Ping(ctx); err != nil {
		checks["storage"], ok = redact.String(err.Error()), false
	}
	return ok
}

// demoReceiver is the demo's sample subscriber: it verifies each request's
// signature, logs the event, downloads the file and checks its SHA-256, as
// a downstream flow would.
type demoReceiver struct {
	keys   [][]byte
	client *http.Client
	log    zerolog.Logger
}

func newDemoReceiver(subs []*publish.Subscription, log zerolog.Logger) *demoReceiver {
	d := &demoReceiver{client: &http.Client{Timeout: 30 * time.Second}, log: log.With().Str("component", "demo_receiver").Logger()}
	for _, s := range subs {
		if strings.HasSuffix(strings.SplitN(s.URL, "?", 2)[0], DemoReceiverPath) {
			d.keys = append(d.keys, s.Keys()...)
		}
	}
	return d
}

func (d *demoReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if len(d.keys) > 0 {
		if err := publish.Verify(d.keys, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			d.log.Warn().Err(err).Msg("rejected a request with a bad signature")
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	var ev struct {
		BusinessEventID, EntityName, DownloadURL, ContentSHA256, FailureReason, FailureMessage, Job string
		NoOfRecords                                                                                 int64
		ControlNumber                                                                               int64
		Inserted, Updated, Deleted                                                                  int64
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	// One short line per event: what a flow would care about. The ids are
	// in the debug line and on the page.
	d.log.Debug().Str("event_id", r.Header.Get("webhook-id")).Int64("control_number", ev.ControlNumber).
		Str("attempt", r.Header.Get("exportbridge-attempt")).Msg("demo receiver: signature verified")
	if ev.BusinessEventID == dataexport.TypeFailed {
		d.log.Info().Str("job", ev.Job).Str("reason", ev.FailureReason).Str("message", ev.FailureMessage).Msg("demo receiver: export failed")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	size, sum, err := d.fetch(r.Context(), ev.DownloadURL)
	if err != nil {
		d.log.Warn().Str("job", ev.Job).Str("entity", ev.EntityName).Err(err).Msg("demo receiver: download failed")
		http.Error(w, "download failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	line := d.log.Info().Str("job", ev.Job).Str("entity", ev.EntityName).Int64("records", ev.NoOfRecords).Int64("bytes", size)
	if sum != ev.ContentSHA256 {
		line = d.log.Warn().Str("job", ev.Job).Str("entity", ev.EntityName).Str("sha256", sum).Str("want_sha256", ev.ContentSHA256)
		line.Msg("demo receiver: the file's SHA-256 differs from the event's")
		http.Error(w, "sha256 mismatch", http.StatusUnprocessableEntity)
		return
	}
	if ev.BusinessEventID == dataexport.TypeChanged {
		line.Int64("inserted", ev.Inserted).Int64("updated", ev.Updated).Int64("deleted", ev.Deleted).Msg("demo receiver: changes verified")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	line.Msg("demo receiver: signed event, file verified")
	w.WriteHeader(http.StatusNoContent)
}

func (d *demoReceiver) fetch(ctx context.Context, url string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, "", redact.Error(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", errors.New(resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return n, hex.EncodeToString(h.Sum(nil)), err
}
