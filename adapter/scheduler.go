package adapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"
)

// Scheduler runs jobs on their cron schedules (local time). A job that is
// still running when its next tick comes is skipped, not queued.
type Scheduler struct {
	c       *cron.Cron
	runner  *pipeline.Runner
	log     zerolog.Logger
	entries map[string]cron.EntryID

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	running bool
}

// NewScheduler schedules every job that has a schedule.
func NewScheduler(cfg *Config, runner *pipeline.Runner, log zerolog.Logger) (*Scheduler, error) {
	s := &Scheduler{runner: runner, log: log.With().Str("component", "scheduler").Logger(), entries: map[string]cron.EntryID{}}
	s.c = cron.New(cron.WithParser(scheduleParser()), cron.WithChain(cron.Recover(cronLogger{s.log})))
	if err := s.Reschedule(cfg.Jobs); err != nil {
		return nil, err
	}
	return s, nil
}

// Reschedule replaces the schedules with jobs' (a reloaded
// configuration); a run in progress goes on. The schedules are checked
// before any is replaced.
func (s *Scheduler) Reschedule(jobs []JobConfig) error {
	parser := scheduleParser()
	for _, j := range jobs {
		if j.Schedule != "" {
			if _, err := parser.Parse(j.Schedule); err != nil {
				return fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, id := range s.entries {
		s.c.Remove(id)
		delete(s.entries, name)
	}
	for _, j := range jobs {
		if j.Schedule == "" {
			continue
		}
		job := j
		id, err := s.c.AddFunc(job.Schedule, func() { s.fire(job) })
		if err != nil {
			return err // parsed above: not reached
		}
		s.entries[job.Name] = id
	}
	return nil
}

func (s *Scheduler) fire(job JobConfig) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if job.Jitter > 0 {
		t := time.NewTimer(rand.N(job.Jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	res, err := s.runner.Run(pipeline.WithTrigger(ctx, pipeline.TriggerSchedule), job.Name, nil)
	switch {
	case errors.Is(err, store.ErrLeaseHeld):
		// Every daemon on the store ticks; one runs the job. Quiet: this is
		// the normal state of all but one of them.
		s.log.Debug().Str("job", job.Name).Err(err).Msg("the job runs in another process: this tick is skipped")
	case errors.Is(err, pipeline.ErrJobRunning):
		s.log.Info().Str("job", job.Name).Msg("previous run still going: this tick is skipped")
	case err != nil && ctx.Err() == nil:
		s.log.Error().Err(err).Str("job", job.Name).Msg("job run failed")
	case err == nil && (res.Packages > 0 || res.Duplicates > 0):
		s.log.Info().Str("job", job.Name).Int("packages", res.Packages).Int("events", len(res.Events)).
			Int("duplicates", res.Duplicates).Str("took", res.Finished.Sub(res.Started).Round(time.Millisecond).String()).Msg("job run done")
	}
}

// Start begins scheduling.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.running = true
	s.c.Start()
}

// Stop stops scheduling, cancels running jobs (each stops at a safe point:
// nothing is acknowledged that is not committed, and an export in progress
// stays recorded to be resumed) and waits for them until ctx ends.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	s.running = false
	s.cancel()
	s.mu.Unlock()
	select {
	case <-s.c.Stop().Done():
		return nil
	case <-ctx.Done():
		return errors.New("scheduler: jobs still running at the shutdown deadline")
	}
}

// Running reports whether the scheduler is started (readiness).
func (s *Scheduler) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Next returns the next scheduled run of job, or zero.
func (s *Scheduler) Next(job string) time.Time {
	s.mu.Lock()
	id, ok := s.entries[job]
	s.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	return s.c.Entry(id).Next
}

type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug().Fields(kv).Msg(msg) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg(msg)
}
