package adapter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
)

// ErrUsage marks errors caused by how a command was called.
var ErrUsage = errors.New("usage")

// ErrExportFailed: export-now finished, but not everything succeeded.
var ErrExportFailed = errors.New("not everything was exported and delivered")

// Phases of export-now around a job's run (pipeline's are within it).
const (
	PhaseStarting      = "starting"                                 // opening the store, the server, the connections
	PhaseHeldElsewhere = "waiting: the job runs in another process" // Status names the process
)

// ExportProgress is told how export-now advances (the CLI draws it).
type ExportProgress interface {
	pipeline.Progress
	// Finished: the job's run ended (err nil: ok); events it committed.
	Finished(job string, events int, err error)
	// Delivering says how a job's deliveries stand while export-now waits.
	Delivering(job string, d DeliveryProgress)
	// Close ends the display.
	Close()
}

// DeliveryProgress is how one job's deliveries stand.
type DeliveryProgress struct {
	Settled, Total int
	// Retrying counts deliveries that failed and wait for their next
	// attempt, the soonest at NextRetry.
	Retrying  int
	NextRetry time.Time
	// OpenCircuits and Paused name subscriptions whose deliveries wait for
	// their target to recover, or for someone to resume them.
	OpenCircuits, Paused []string
}

type noExportProgress struct{}

func (noExportProgress) Phase(string, pipeline.Phase)        {}
func (noExportProgress) Downloading(string, int64, int64)    {}
func (noExportProgress) Converting(string, string, int64)    {}
func (noExportProgress) Committed(string, []store.Event)     {}
func (noExportProgress) Finished(string, int, error)         {}
func (noExportProgress) Delivering(string, DeliveryProgress) {}
func (noExportProgress) Close()                              {}

// ExportNowReport is what export-now did, for the CLI to show.
type ExportNowReport struct {
	Jobs []JobReport
	// Deliveries are those waited for (none with NoWait).
	Deliveries []store.Delivery
	Waited     bool
}

// JobReport is one job's run.
type JobReport struct {
	Name   string
	Result *pipeline.RunResult // nil when the run did not start
	Err    error
}

// ExportNowOptions configures ExportNow.
type ExportNowOptions struct {
	Jobs     []string       // names; empty means every job
	NoWait   bool           // return once events are committed
	Progress ExportProgress // nil: none
	// PollInterval is how often delivery states are read while waiting.
	PollInterval time.Duration
	Failpoint    Failpoint // crash tests only
}

// ExportNow runs the jobs once, in this process, and (unless NoWait) waits
// until every event they produced is delivered or dead-lettered, following
// the retry delays. It serves the download links on server.listen
// meanwhile; if that address is taken (the daemon is running) the daemon
// serves them, from the same store and files. It returns what it did, and
// an error (ErrExportFailed listing what failed) unless every job succeeded
// and every event was delivered.
func ExportNow(ctx context.Context, cfg *Config, log zerolog.Logger, opt ExportNowOptions) (*ExportNowReport, error) {
	names, err := selectJobs(cfg, opt.Jobs)
	if err != nil {
		return nil, err
	}
	prog := opt.Progress
	if prog == nil {
		prog = noExportProgress{}
	}
	if opt.PollInterval == 0 {
		opt.PollInterval = 200 * time.Millisecond
	}
	defer prog.Close()
	for _, name := range names {
		prog.Phase(name, pipeline.Phase{Name: PhaseStarting, Since: time.Now()})
	}
	app, err := StartApp(ctx, cfg, log, AppOptions{HTTPOptional: true, Failpoint: opt.Failpoint})
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := app.Stop(sctx); err != nil {
			log.Warn().Err(err).Msg("shutdown")
		}
	}()

	// Deliveries an earlier run left open (it crashed, or was stopped) are
	// finished too: when no daemon runs, nothing else will.
	leftover, err := openEventIDs(ctx, app.Store)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	results := map[string]*pipeline.RunResult{}
	runErrs := map[string]error{}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := runWhenFree(ctx, app, name, prog, log)
			events := 0
			if res != nil {
				events = len(res.Events)
			}
			prog.Finished(name, events, err)
			mu.Lock()
			defer mu.Unlock()
			results[name], runErrs[name] = res, err
		}()
	}
	wg.Wait()
	eventIDs := leftover
	for _, name := range names {
		if res := results[name]; res != nil {
			eventIDs = append(eventIDs, res.Events...)
		}
	}
	var deliveries []store.Delivery
	if !opt.NoWait && len(eventIDs) > 0 {
		deliveries, err = waitDelivered(ctx, app, eventIDs, opt.PollInterval, prog)
		if err != nil {
			return nil, err
		}
	}
	prog.Close()
	report := &ExportNowReport{Deliveries: deliveries, Waited: !opt.NoWait}
	for _, name := range names {
		report.Jobs = append(report.Jobs, JobReport{Name: name, Result: results[name], Err: runErrs[name]})
	}
	return report, problems(report)
}

// runWhenFree runs the job, first waiting while another process holds its
// lease (a daemon running it now, or one that died, whose lease expires).
func runWhenFree(ctx context.Context, app *App, name string, prog pipeline.Progress, log zerolog.Logger) (*pipeline.RunResult, error) {
	said := false
	for {
		res, err := app.Runner.Run(pipeline.WithTrigger(ctx, pipeline.TriggerExportNow), name, prog)
		var held *store.LeaseHeldError
		if !errors.As(err, &held) {
			return res, err
		}
		if !said {
			log.Info().Str("job", name).Str("held_by", held.Owner).Time("lease_until", held.ExpiresAt).
				Msg("the job is running in another process: waiting for it to finish")
			prog.Phase(name, pipeline.Phase{Name: PhaseHeldElsewhere, Status: held.Owner, Since: time.Now()})
			said = true
		}
		t := time.NewTimer(min(app.cfg.Store.LeaseTTL/3, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

func openEventIDs(ctx context.Context, st store.Store) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	for _, state := range []string{store.StatePending, store.StateInFlight} {
		ds, err := st.Deliveries(ctx, store.Filter{State: state, Limit: 100000})
		if err != nil {
			return nil, fmt.Errorf("reading open deliveries: %w", err)
		}
		for _, d := range ds {
			if !seen[d.Event.ID] {
				seen[d.Event.ID] = true
				ids = append(ids, d.Event.ID)
			}
		}
	}
	return ids, nil
}

func selectJobs(cfg *Config, want []string) ([]string, error) {
	known := map[string]bool{}
	var all []string
	for _, j := range cfg.Jobs {
		known[j.Name] = true
		all = append(all, j.Name)
	}
	if len(want) == 0 {
		if len(all) == 0 {
			return nil, fmt.Errorf("%w: the configuration has no jobs", ErrUsage)
		}
		return all, nil
	}
	for _, n := range want {
		if !known[n] {
			return nil, fmt.Errorf("%w: no job named %q (jobs: %s)", ErrUsage, n, strings.Join(all, ", "))
		}
	}
	return want, nil
}

// waitDelivered polls the deliveries of eventIDs until none is pending or
// in flight, except those held by a paused subscription, which will not
// move until someone resumes it.
func waitDelivered(ctx context.Context, app *App, eventIDs []string, every time.Duration, prog ExportProgress) ([]store.Delivery, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ds, err := app.Store.Deliveries(ctx, store.Filter{EventIDs: eventIDs, Limit: len(eventIDs) * (len(app.cfg.Subscriptions) + 1)})
		if err != nil {
			return nil, fmt.Errorf("reading deliveries: %w", err)
		}
		paused, err := app.Store.Paused(ctx)
		if err != nil {
			return nil, err
		}
		open, jobs := deliveryProgress(ds, paused, app.Pub.Circuits())
		for _, job := range slices.Sorted(maps.Keys(jobs)) {
			prog.Delivering(job, jobs[job])
		}
		if open == 0 {
			return ds, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while %d deliveries were still open (they resume with the next run or the daemon): %w", open, ctx.Err())
		case <-t.C:
		}
	}
}

// deliveryProgress sums deliveries up per job, and counts those still
// open (a paused subscription's count as settled: they will not move).
func deliveryProgress(ds []store.Delivery, paused map[string]string, circuits map[string]publish.BreakerState) (int, map[string]DeliveryProgress) {
	open := 0
	jobs := map[string]DeliveryProgress{}
	for _, d := range ds {
		p := jobs[d.Event.Job]
		p.Total++
		_, held := paused[d.Subscription]
		switch {
		case d.State == store.StateDelivered || d.State == store.StateDead || d.State == store.StateSuperseded:
			p.Settled++
		case held:
			p.Settled++
			if !slices.Contains(p.Paused, d.Subscription) {
				p.Paused = append(p.Paused, d.Subscription)
			}
		default:
			open++
			if circuits[d.Subscription].State == publish.CircuitOpen {
				if !slices.Contains(p.OpenCircuits, d.Subscription) {
					p.OpenCircuits = append(p.OpenCircuits, d.Subscription)
				}
			} else if d.State == store.StatePending && d.Attempt > 0 {
				p.Retrying++
				if p.NextRetry.IsZero() || d.NextAttemptAt.Before(p.NextRetry) {
					p.NextRetry = d.NextAttemptAt
				}
			}
		}
		jobs[d.Event.Job] = p
	}
	return open, jobs
}

// problems is nil when every job succeeded and every delivery was made;
// else ErrExportFailed listing what was not.
func problems(r *ExportNowReport) error {
	var problems []string
	for _, j := range r.Jobs {
		if j.Err != nil {
			problems = append(problems, fmt.Sprintf("job %s failed: %v", j.Name, j.Err))
		}
		if j.Result == nil {
			continue
		}
		for _, f := range j.Result.Failed {
			problems = append(problems, fmt.Sprintf("job %s: DataExportFailed %s", j.Name, f))
		}
	}
	for _, d := range r.Deliveries {
		// A superseded snapshot is not a failure: a newer one went instead.
		if d.State != store.StateDelivered && d.State != store.StateSuperseded {
			what := d.Event.Entity
			if what == "" {
				what = d.Event.Type
			}
			why := redact.String(d.LastError)
			if why == "" {
				why = "subscription paused"
			}
			problems = append(problems, fmt.Sprintf("delivery %d of %q (event %s) to %s is %s after %d attempt(s): %s",
				d.ID, what, d.Event.ID, d.Subscription, d.State, d.Attempt, why))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("%w:\n  %s", ErrExportFailed, strings.Join(problems, "\n  "))
}
