// Package pipeline runs one job: it takes items from the job's Source,
// recognises those already processed, fetches and converts their packages,
// commits the results in one transaction under the job's lease, and
// acknowledges them. It knows no kind of job: dequeue and exporter provide
// the Sources, the adapter wires them.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/filename"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
	"github.com/exportbridge/exportbridge/telemetry"
)

// Sentinel errors of Runner.Run.
var (
	ErrJobRunning = errors.New("job is already running")
	ErrUnknownJob = errors.New("no such job")
	// ErrNotAcknowledged: a committed message could not be acknowledged
	// (the ack still failed after its retries, or the store could not be
	// confirmed first), or it came back during the run that handled it.
	// Nothing is lost: FinOps redelivers it, and it is recognised and only
	// acknowledged then. The run stops rather than take it again.
	ErrNotAcknowledged = errors.New("message committed but not acknowledged; FinOps will redeliver it and it will be recognised and only acknowledged")
)

// RunResult summarises one run of a job.
type RunResult struct {
	Job        string    `json:"job"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Packages   int       `json:"packages"`   // packages committed
	Duplicates int       `json:"duplicates"` // redelivered messages recognised and only acknowledged
	Events     []string  `json:"event_ids"`  // events committed
	Failed     []string  `json:"failed"`     // DataExportFailed messages
	Error      string    `json:"error,omitempty"`
}

// Ledger is what the runner keeps in the store: the messages it
// has seen, the packages it commits, its job leases and run history.
type Ledger interface {
	FindMessage(ctx context.Context, job string, keys store.MessageKeys) (*store.Message, error)
	MarkAcked(ctx context.Context, job, messageID string, at time.Time) error
	CommitPackage(ctx context.Context, p store.Package) ([]store.Event, error)
	AcquireJobLease(ctx context.Context, job, owner string, now, until time.Time) (store.JobLease, error)
	RenewJobLease(ctx context.Context, l store.JobLease, now, until time.Time) (store.JobLease, error)
	ReleaseJobLease(ctx context.Context, l store.JobLease) error
	StartRun(ctx context.Context, r store.Run) (int64, error)
	FinishRun(ctx context.Context, r store.Run) error
}

// Config is what a Runner needs to know of the configuration.
type Config struct {
	// Instance names this process on the job leases it takes.
	Instance string
	// LeaseTTL is the length of a job lease; it is renewed every third.
	LeaseTTL time.Duration
	// WorkDir holds downloads and packages being converted.
	WorkDir string
	// QuarantineDir keeps packages that cannot be processed, per job.
	QuarantineDir string
	// Convert are the converter's options; a job may set its Encoding.
	Convert datapackage.Options
}

// Job is one configured job as the runner sees it.
type Job struct {
	Name        string
	Kind        string // for traces only: the runner never branches on it
	LegalEntity string
	Encoding    string // "": Config.Convert's
	// MaxMessages bounds the items taken in one run; 0: until the source
	// has none.
	MaxMessages int
	// NewSource makes the job's Source for one run; lease gives the run's
	// job lease, for sources that record work in the store (fenced).
	NewSource func(log zerolog.Logger, lease func() *store.JobLease) Source
	// Changes are the job's change events (none without key columns).
	Changes Changes
}

// Observer is told what runs do (metrics). Polls are the sources' own.
type Observer interface {
	Run(job, result string)
	Package(job, result string)
	Converted(job string, records, bytes int64)
	Event(job, typ string)
}

// Points at which the crash tests kill the process (Option WithFailpoint).
const (
	PointAfterDownload = "after-download" // a package is downloaded, nothing committed
	PointAfterCommit   = "after-commit"   // committed, not yet acknowledged
)

// Runner runs jobs: source → download → convert → commit → ack. The
// daemon's schedule, export-now and the API all go through Run.
type Runner struct {
	cfg       Config
	failpoint func(point string)
	st        Ledger
	storage   files.Storage
	subs      *publish.Registry
	notify    func()
	obs       Observer
	log       zerolog.Logger
	now       func() time.Time
	cmp       Comparisons // nil: a store that keeps no comparisons (no change events)
	tracer    trace.Tracer

	mu   sync.RWMutex
	jobs map[string]*jobRunner
}

type jobRunner struct {
	lock sync.Mutex // held for a run: a job never overlaps itself
	// cfg is the job's definition; SetJobs replaces it, and a run takes it
	// once, when it starts.
	cfg Job

	statusMu sync.Mutex
	// lease is the job lease of the run in progress, renewed while it runs;
	// commits carry it so the store can refuse them once it is lost.
	lease *store.JobLease
	// envFault is the last run's error when the environment caused it (disk
	// full, I/O error, store gone); readiness reports it until a run ends
	// cleanly.
	envFault string
}

// Option adjusts a Runner.
type Option func(*Runner)

// WithFailpoint calls reached at each Point (the crash tests kill the
// process there).
func WithFailpoint(reached func(point string)) Option {
	return func(r *Runner) { r.failpoint = reached }
}

// NewRunner returns a runner for jobs; notify is called after each commit.
func NewRunner(cfg Config, jobs []Job, st Ledger, storage files.Storage, subs *publish.Registry, notify func(), obs Observer,
	log zerolog.Logger, opts ...Option) (*Runner, error) {
	r := &Runner{cfg: cfg, failpoint: func(string) {}, st: st, storage: storage, subs: subs, notify: notify, obs: obs,
		log: log.With().Str("component", "runner").Logger(), now: time.Now, jobs: map[string]*jobRunner{},
		tracer: noop.NewTracerProvider().Tracer("")}
	for _, o := range opts {
		o(r)
	}
	if c, ok := st.(Comparisons); ok {
		r.cmp = c
	}
	for _, j := range jobs {
		r.jobs[j.Name] = &jobRunner{cfg: j}
	}
	for _, dir := range []string{cfg.WorkDir, cfg.QuarantineDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	return r, nil
}

// Has reports whether name is a configured job.
func (r *Runner) Has(name string) bool {
	_, ok := r.job(name)
	return ok
}

func (r *Runner) job(name string) (*jobRunner, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	jr, ok := r.jobs[name]
	return jr, ok
}

// SetJobs replaces the jobs (a reloaded configuration). A run in progress
// finishes as it began; the next run of a job takes its new definition. A
// job's run history, lease and running state follow its name.
func (r *Runner) SetJobs(jobs []Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]*jobRunner, len(jobs))
	for _, j := range jobs {
		jr, ok := r.jobs[j.Name]
		if !ok {
			jr = &jobRunner{}
		}
		jr.statusMu.Lock()
		jr.cfg = j
		jr.statusMu.Unlock()
		next[j.Name] = jr
	}
	r.jobs = next
}

// EnvironmentFaults returns, per job, the error of its last run when the
// environment caused it (a full disk, an I/O error, the store gone).
func (r *Runner) EnvironmentFaults() map[string]string {
	out := map[string]string{}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name, jr := range r.jobs {
		jr.statusMu.Lock()
		if jr.envFault != "" {
			out[name] = jr.envFault
		}
		jr.statusMu.Unlock()
	}
	return out
}

// Run runs job name once. It returns ErrJobRunning if the job is running,
// in this process or (wrapping a *store.LeaseHeldError that names it) in
// another process on the same store.
//
// The run holds the job's lease in the store, renewed every third of its
// length; if the lease is lost (this process stalled past it and another
// took the job over) the run is cancelled with store.ErrLeaseLost, and the
// store refuses its commits.
func (r *Runner) Run(ctx context.Context, name string, prog Progress) (*RunResult, error) {
	jr, ok := r.job(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	if !jr.lock.TryLock() {
		return nil, fmt.Errorf("%w: %s", ErrJobRunning, name)
	}
	defer jr.lock.Unlock()
	jr.statusMu.Lock()
	job := jr.cfg
	jr.statusMu.Unlock()
	if prog == nil {
		prog = noProgress{}
	}
	log := r.log.With().Str("job", name).Logger()
	now := r.now()
	lease, err := r.st.AcquireJobLease(ctx, name, r.cfg.Instance, now, now.Add(r.cfg.LeaseTTL))
	if errors.Is(err, store.ErrLeaseHeld) {
		return nil, fmt.Errorf("%w: %w", ErrJobRunning, err)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: taking its lease: %w", name, err)
	}
	res := &RunResult{Job: name, Started: now}
	ctx, span := r.tracer.Start(ctx, "job.run", trace.WithAttributes(attrJob.String(name), attribute.String("exportbridge.job.kind", job.Kind),
		attribute.String("exportbridge.trigger", triggerOf(ctx))))
	log = telemetry.WithTrace(log, span)
	var spanErr error
	defer func() {
		span.SetAttributes(attribute.Int("exportbridge.packages", res.Packages), attribute.Int("exportbridge.events", len(res.Events)),
			attribute.Int("exportbridge.duplicates", res.Duplicates))
		telemetry.End(span, spanErr)
	}()
	runID, err := r.st.StartRun(ctx, store.Run{Job: name, Owner: r.cfg.Instance, StartedAt: now})
	if err != nil {
		_ = r.st.ReleaseJobLease(context.WithoutCancel(ctx), lease)
		return nil, fmt.Errorf("job %s: recording the run: %w", name, err)
	}
	jr.statusMu.Lock()
	jr.lease = &lease
	jr.statusMu.Unlock()
	runCtx, stopRenewing := r.holdLease(ctx, jr, log)
	runCtx = withPhases(runCtx, func(p Phase) { prog.Phase(name, p) })
	err = r.runSource(runCtx, jr, job, job.NewSource(log, jr.currentLease), res, prog, log)
	if err == nil {
		// The snapshots committed now, and any an earlier run left.
		err = r.compareWaiting(runCtx, jr, job, res, log)
	}
	if cause := context.Cause(runCtx); err != nil && errors.Is(cause, store.ErrLeaseLost) {
		err = fmt.Errorf("job %s: %w (another process took the job over; this run stopped)", name, cause)
	}
	held := stopRenewing()
	if err2 := r.st.ReleaseJobLease(context.WithoutCancel(ctx), held); err2 != nil {
		log.Warn().Err(err2).Msg("releasing the job lease failed; it expires by itself")
	}
	res.Finished = r.now()
	result := "ok"
	envFault := ""
	switch {
	case err != nil && fault.IsEnvironment(err) && ctx.Err() == nil:
		result, envFault = "environment_fault", err.Error()
		log.Error().Err(err).Msg("run stopped by an environment fault: nothing was acknowledged; the data will be fetched again")
	case err != nil && ctx.Err() == nil:
		result = "error"
	case err != nil:
		result = "cancelled"
	}
	if err != nil {
		res.Error = err.Error()
	}
	spanErr = err
	span.SetAttributes(attribute.String("exportbridge.result", result))
	r.obs.Run(name, result)
	if err2 := r.st.FinishRun(context.WithoutCancel(ctx), store.Run{ID: runID, FinishedAt: res.Finished, Outcome: result,
		Packages: res.Packages, Duplicates: res.Duplicates, Events: len(res.Events), Error: res.Error}); err2 != nil {
		log.Warn().Err(err2).Msg("recording the end of the run failed")
	}
	jr.statusMu.Lock()
	jr.lease = nil
	if result != "cancelled" {
		jr.envFault = envFault
	}
	jr.statusMu.Unlock()
	return res, err
}

// holdLease renews the run's job lease every third of its length until the
// returned stop is called (which returns the lease as last held). Losing the
// lease cancels the run's context with store.ErrLeaseLost.
func (r *Runner) holdLease(ctx context.Context, jr *jobRunner, log zerolog.Logger) (context.Context, func() store.JobLease) {
	runCtx, cancel := context.WithCancelCause(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if err := r.renewLease(runCtx, jr); err != nil && runCtx.Err() == nil {
				if errors.Is(err, store.ErrLeaseLost) {
					log.Error().Err(err).Msg("job lease lost: stopping the run; the process now holding the job does the work")
					cancel(err)
					return
				}
				log.Warn().Err(err).Msg("renewing the job lease failed; trying again")
			}
		}
	}()
	// The run is over when stop is called: cancelling its context ends the
	// renewer (a cause set by a lost lease is kept).
	return runCtx, func() store.JobLease {
		cancel(nil)
		<-stopped
		jr.statusMu.Lock()
		defer jr.statusMu.Unlock()
		return *jr.lease
	}
}

// renewLease extends the run's job lease; ErrLeaseLost when it is gone.
func (r *Runner) renewLease(ctx context.Context, jr *jobRunner) error {
	jr.statusMu.Lock()
	l := *jr.lease
	jr.statusMu.Unlock()
	now := r.now()
	renewed, err := r.st.RenewJobLease(ctx, l, now, now.Add(r.cfg.LeaseTTL))
	if err != nil {
		return err
	}
	jr.statusMu.Lock()
	jr.lease = &renewed
	jr.statusMu.Unlock()
	return nil
}

// currentLease is the run's job lease, for fencing its writes.
func (jr *jobRunner) currentLease() *store.JobLease {
	jr.statusMu.Lock()
	defer jr.statusMu.Unlock()
	if jr.lease == nil {
		return nil
	}
	l := *jr.lease
	return &l
}

// runSource takes items from src until it has none (or max_messages were
// taken) and brings each in.
func (r *Runner) runSource(ctx context.Context, jr *jobRunner, job Job, src Source, res *RunResult, prog Progress, log zerolog.Logger) error {
	handled := map[string]bool{}
	for n := 0; job.MaxMessages <= 0 || n < job.MaxMessages; n++ {
		ReportPhase(ctx, Phase{Name: PhaseAsking, Since: r.now()})
		item, err := src.Next(ctx)
		if err != nil {
			return fmt.Errorf("job %s: %w", job.Name, err)
		}
		if item == nil {
			if n == 0 {
				log.Debug().Msg("nothing to bring in")
			}
			return nil
		}
		id := item.Origin().MessageID
		if handled[id] {
			// Its acknowledgement did not take: taking it again would loop
			// until max_messages. It will come back to a later run.
			return fmt.Errorf("job %s: message %s came back during the run that handled it: %w", job.Name, id, ErrNotAcknowledged)
		}
		handled[id] = true
		if err := r.bringIn(ctx, jr, job, item, res, prog, log.With().Str("message_id", id).Logger()); err != nil {
			return err
		}
	}
	log.Info().Int("max_messages", job.MaxMessages).Msg("run stopped at max_messages; the rest waits for the next run")
	return nil
}

// bringIn processes one item: recognised → acknowledged only; failed by its
// source → a DataExportFailed; else fetched, converted and committed. It
// acknowledges the item only after its results are committed.
func (r *Runner) bringIn(ctx context.Context, jr *jobRunner, job Job, item Item, res *RunResult, prog Progress, log zerolog.Logger) error {
	origin, keys := item.Origin(), item.Keys()
	if dup, err := r.recognised(ctx, job.Name, keys); err != nil {
		return err
	} else if dup != nil {
		log.Info().Str("first_seen_as", dup.ID).Msg("already processed: acknowledging only")
		res.Duplicates++
		r.obs.Package(job.Name, "duplicate")
		return r.done(ctx, jr, job.Name, item, dup.ID, log)
	}
	dl, err := item.Fetch(ctx, r.cfg.WorkDir, func(n, total int64) { prog.Downloading(job.Name, n, total) })
	var failed *UpstreamFailure
	if errors.As(err, &failed) {
		if err := r.commitFailure(ctx, jr, job, origin, keys, failed.Reason, failed.Message, res, prog, log); err != nil {
			return err
		}
		return r.done(ctx, jr, job.Name, item, origin.MessageID, log)
	}
	if err != nil {
		// Not acknowledged: it comes back (redelivered, or the export resumed).
		return fmt.Errorf("job %s: fetching %s: %w", job.Name, origin.MessageID, err)
	}
	defer os.Remove(dl.Path) // gone already if it was quarantined
	r.failpoint(PointAfterDownload)
	keys.ContentSHA256 = dl.SHA256
	if item.Redeliverable() {
		if dup, err := r.recognised(ctx, job.Name, store.MessageKeys{ContentSHA256: dl.SHA256}); err != nil {
			return err
		} else if dup != nil {
			log.Info().Str("first_seen_as", dup.ID).Str("sha256", dl.SHA256).Msg("same content as a processed message: acknowledging only")
			res.Duplicates++
			r.obs.Package(job.Name, "duplicate")
			return r.done(ctx, jr, job.Name, item, dup.ID, log)
		}
	}
	p, err := r.convert(ctx, job, origin, dl, keys, prog, log)
	if err != nil {
		return err
	}
	p.ExecutionID = origin.ExecutionID
	if err := r.commit(ctx, jr, p, res, prog, log); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return err
	}
	r.failpoint(PointAfterCommit)
	return r.done(ctx, jr, job.Name, item, origin.MessageID, log)
}

func (r *Runner) recognised(ctx context.Context, job string, keys store.MessageKeys) (*store.Message, error) {
	m, err := r.st.FindMessage(ctx, job, keys)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("job %s: looking up message: %w", job, err)
	}
	return m, nil
}

// done acknowledges item, once the store is confirmed to be the database the
// commit went to and still writable: an ack after a commit into a deleted
// database would lose the message. The FinOps client already retried
// transient failures; if the ack still fails the run ends with
// ErrNotAcknowledged: FinOps redelivers the message in about 30 minutes, it
// is recognised, and only acknowledged then.
func (r *Runner) done(ctx context.Context, jr *jobRunner, job string, item Item, recordedAs string, log zerolog.Logger) error {
	id := item.Origin().MessageID
	// Renewing the lease is a write to the store: it confirms both that the
	// store is the database the commit went to and that this process still
	// holds the job.
	if err := r.renewLease(ctx, jr); err != nil {
		return fmt.Errorf("job %s: message %s: store or job lease not confirmed, not acknowledging: %w", job, id, err)
	}
	if err := item.Done(ctx); err != nil {
		return fmt.Errorf("job %s: message %s: %w: %w", job, id, ErrNotAcknowledged, err)
	}
	if err := r.st.MarkAcked(ctx, job, recordedAs, r.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn().Err(err).Msg("recording the acknowledgement failed")
	}
	return nil
}

// commitFailure publishes a DataExportFailed for an item that has no
// package (its source failed it), recording the item and closing its export
// as failed.
func (r *Runner) commitFailure(ctx context.Context, jr *jobRunner, job Job, src dataexport.Source, keys store.MessageKeys, reason datapackage.Reason, msg string,
	res *RunResult, prog Progress, log zerolog.Logger) error {
	now := r.now()
	ev := dataexport.NewFailed(src, reason, msg, "", "", now)
	p := store.Package{Job: job.Name, MessageID: src.MessageID, Keys: keys, ExecutionID: src.ExecutionID,
		ExportError: redact.Excerpt(msg, 2000), At: now, Events: []store.NewEvent{r.route(ev)}}
	if err := r.commit(ctx, jr, p, res, prog, log); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return err
	}
	r.obs.Package(job.Name, "failed")
	return nil
}

// route attaches the subscriptions that want ev.
// A snapshot (DataExportCompleted) supersedes the older snapshots of its
// entity still waiting for the subscriptions that ask for it.
func (r *Runner) route(ev store.Event) store.NewEvent {
	subs := r.subs.Subscriptions()
	ne := store.NewEvent{Event: ev, Subscriptions: publish.Subscribers(subs, ev)}
	if ev.Type == dataexport.TypeCompleted {
		for _, s := range subs {
			if s.Supersede && slices.Contains(ne.Subscriptions, s.Name) {
				ne.Supersede = append(ne.Supersede, s.Name)
			}
		}
	}
	return ne
}

// convert turns a downloaded package into artifacts and events. A package
// that cannot be processed is moved whole to quarantine and becomes one
// DataExportFailed event; entities that fail while others convert become
// one DataExportFailed each, and the package is kept in quarantine too.
func (r *Runner) convert(ctx context.Context, job Job, src dataexport.Source, dl *finops.Download, keys store.MessageKeys, prog Progress, log zerolog.Logger) (_ store.Package, err error) {
	ctx, span := r.tracer.Start(ctx, "package.convert", trace.WithAttributes(attrJob.String(job.Name),
		attribute.String("exportbridge.message_id", src.MessageID), attribute.Int64("exportbridge.package_bytes", dl.Size)))
	defer func() { telemetry.End(span, err) }()
	now := r.now()
	p := store.Package{Job: job.Name, MessageID: src.MessageID, Keys: keys, At: now}
	opts := r.cfg.Convert
	if job.Encoding != "" {
		opts.Encoding = job.Encoding
	}
	opts.BareName = job.Name
	opts.WorkDir = r.cfg.WorkDir
	opts.Progress = func(entity string, n int64) { prog.Converting(job.Name, entity, n) }
	// Converted in work_dir, then handed to the storage one file at a time.
	pkgID := files.NewID()
	pkgDir := filepath.Join(r.cfg.WorkDir, pkgID)
	defer os.RemoveAll(pkgDir)
	conv, err := datapackage.Convert(ctx, dl.Path, pkgDir, opts)
	if err != nil {
		var de *datapackage.Error
		if !errors.As(err, &de) || ctx.Err() != nil {
			// Not the package's fault (disk full, I/O, cancellation): nothing
			// is quarantined, published or acknowledged; try again later.
			return p, fmt.Errorf("job %s: converting %s: %w", job.Name, src.MessageID, err)
		}
		q, qerr := r.quarantine(ctx, job.Name, src.MessageID, dl.Path)
		if qerr != nil {
			return p, fmt.Errorf("job %s: quarantining %s: %w", job.Name, src.MessageID, qerr)
		}
		log.Warn().Err(err).Str("reason", string(de.Reason)).Str("quarantine_file", q).Msg("package cannot be processed: quarantined")
		r.obs.Package(job.Name, "quarantined")
		p.Events = append(p.Events, r.route(dataexport.NewFailed(src, de.Reason, de.Error(), de.Entity, q, now)))
		return p, nil
	}
	quarantined := ""
	if len(conv.Failures) > 0 {
		q, qerr := r.quarantine(ctx, job.Name, src.MessageID, dl.Path)
		if qerr != nil {
			return p, fmt.Errorf("job %s: quarantining %s: %w", job.Name, src.MessageID, qerr)
		}
		quarantined = q
	}
	for _, res := range conv.Results {
		a := store.Artifact{ID: files.NewID(), Job: job.Name, Entity: res.Entity, Name: filepath.Base(res.Path), Key: pkgID + "/" + filepath.Base(res.Path),
			ContentType: res.ContentType, ContentEncoding: res.ContentEncoding, Bytes: res.Bytes, SHA256: res.SHA256, Records: res.Records, CreatedAt: now}
		if err := r.storage.Put(ctx, a.Key, res.Path, files.Meta{ContentType: a.ContentType, ContentEncoding: a.ContentEncoding}); err != nil {
			r.deleteStored(p.Artifacts)
			return p, fmt.Errorf("job %s: storing %s: %w", job.Name, a.Key, err)
		}
		p.Artifacts = append(p.Artifacts, a)
		ev := dataexport.NewCompleted(src, dataexport.File{ArtifactID: a.ID, Entity: res.Entity, SourceFormat: res.SourceFormat, Records: res.Records,
			ContentType: res.ContentType, ContentEncoding: res.ContentEncoding, Bytes: res.Bytes, SHA256: res.SHA256}, now)
		p.Events = append(p.Events, r.route(ev))
		r.obs.Converted(job.Name, res.Records, res.Bytes)
		// A span per entity, timed by the converter (which reports an
		// entity when it is done).
		_, es := r.tracer.Start(ctx, "package.convert.entity", trace.WithTimestamp(res.Started), trace.WithAttributes(
			attribute.String("exportbridge.entity", res.Entity), attribute.Int64("exportbridge.records", res.Records),
			attribute.Int64("exportbridge.bytes", res.Bytes), attribute.String("exportbridge.format", res.SourceFormat)))
		es.End(trace.WithTimestamp(res.Finished))
	}
	for _, f := range conv.Failures {
		log.Warn().Err(f).Str("entity", f.Entity).Str("reason", string(f.Reason)).Msg("entity cannot be converted")
		p.Events = append(p.Events, r.route(dataexport.NewFailed(src, f.Reason, f.Error(), f.Entity, quarantined, now)))
	}
	p.Comparisons = comparisons(job, src, p, log)
	return p, nil
}

// deleteStored removes the files of artifacts that will not be committed;
// what it cannot remove the orphan sweep does.
func (r *Runner) deleteStored(arts []store.Artifact) {
	for _, a := range arts {
		_ = r.storage.Delete(context.Background(), a.Key)
	}
}

// commit stores the package, fenced by the run's job lease, and wakes the
// publisher.
func (r *Runner) commit(ctx context.Context, jr *jobRunner, p store.Package, res *RunResult, prog Progress, log zerolog.Logger) (err error) {
	deliveries := 0
	for _, e := range p.Events {
		deliveries += len(e.Subscriptions)
	}
	ctx, span := r.tracer.Start(ctx, "package.commit", trace.WithAttributes(attrJob.String(p.Job),
		attribute.Int("exportbridge.events", len(p.Events)), attribute.Int("exportbridge.deliveries", deliveries)))
	defer func() {
		if errors.Is(err, store.ErrDuplicate) {
			span.End()
			return
		}
		telemetry.End(span, err)
	}()
	if parent, state := telemetry.Inject(ctx); parent != "" {
		// Delivery attempts, later and maybe elsewhere, continue this trace.
		for i := range p.Events {
			p.Events[i].TraceParent, p.Events[i].TraceState = parent, state
		}
	}
	p.Lease = jr.currentLease()
	// The commit must not be abandoned halfway because shutdown began: it
	// is short, and what it records is what makes the ack safe.
	evs, err := r.st.CommitPackage(context.WithoutCancel(ctx), p)
	if errors.Is(err, store.ErrDuplicate) {
		r.deleteStored(p.Artifacts)
		log.Info().Msg("package was committed before: not committing again")
		res.Duplicates++
		return err
	}
	if err != nil {
		return fmt.Errorf("job %s: committing %s: %w", p.Job, p.MessageID, err)
	}
	res.Packages++
	completed, failed := 0, 0
	for _, e := range evs {
		res.Events = append(res.Events, e.ID)
		r.obs.Event(p.Job, e.Type)
		if e.Type == dataexport.TypeFailed {
			failed++
			res.Failed = append(res.Failed, failureText(e))
		} else {
			completed++
		}
	}
	if failed == 0 {
		r.obs.Package(p.Job, "committed")
	}
	prog.Committed(p.Job, evs)
	log.Info().Int("entities", completed).Int("failed", failed).Msg("package committed")
	if r.notify != nil {
		r.notify()
	}
	return nil
}

func failureText(e store.Event) string {
	var b dataexport.FailedBody
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return e.ID
	}
	return b.FailureReason + ": " + b.FailureMessage
}

// quarantine keeps a package that could not be processed, whole, under
// quarantine/<job>/, taking the downloaded file over (it is not needed once
// converted). The quarantine is a files.Local: one way to move a file
// durably into place for the whole product.
func (r *Runner) quarantine(ctx context.Context, job, messageID, path string) (string, error) {
	key := job + "/" + r.now().UTC().Format("20060102T150405Z") + "-" + filename.Safe(messageID, "message") + ".zip"
	if err := (files.Local{Dir: r.cfg.QuarantineDir}).Put(ctx, key, path, files.Meta{}); err != nil {
		return "", err
	}
	return filepath.Join(r.cfg.QuarantineDir, filepath.FromSlash(key)), nil
}
