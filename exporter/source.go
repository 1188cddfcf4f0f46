package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
)

// Kind is the SourceKind of the events of exported packages.
const Kind = "package-export"

// Ledger is what a Source records of its exports.
type Ledger interface {
	OpenExport(ctx context.Context, job string) (*store.Export, error)
	StartExport(ctx context.Context, e store.Export) error
}

// Job says what a Source exports.
type Job struct {
	Name, DefinitionGroup, LegalEntity string
	PollInterval, Timeout              time.Duration
}

// Source is a job's package exports as a pipeline.Source: one export per
// run, the open one if a run before left it (resumed, not started again),
// else a new one, recorded before FinOps is asked to start it.
type Source struct {
	Exp    *Exporter
	Ledger Ledger
	Job    Job
	Lease  func() *store.JobLease // fences StartExport
	Now    func() time.Time
	// Poll is told each status poll's result (ok, error); Polled is called
	// after the first (the crash tests' failpoint).
	Poll   func(result string)
	Polled func()
	Log    zerolog.Logger
	taken  bool
}

var _ pipeline.Source = (*Source)(nil)

// Next implements pipeline.Source.
func (s *Source) Next(ctx context.Context) (pipeline.Item, error) {
	if s.taken {
		return nil, nil
	}
	s.taken = true
	spec := Spec{Job: s.Job.Name, DefinitionGroup: s.Job.DefinitionGroup, LegalEntity: s.Job.LegalEntity}
	open, err := s.Ledger.OpenExport(ctx, s.Job.Name)
	var it *exportItem
	switch {
	case errors.Is(err, store.ErrNotFound):
		started := s.Now()
		it = &exportItem{s: s, id: NewExecutionID(s.Job.Name, started), started: started}
		// Remember the export before starting it, so a restart resumes it.
		if err := s.Ledger.StartExport(ctx, store.Export{ExecutionID: it.id, Job: s.Job.Name, StartedAt: started, Lease: s.Lease()}); err != nil {
			return nil, fmt.Errorf("recording export: %w", err)
		}
		it.rejected = s.start(ctx, spec, it.id)
	case err != nil:
		return nil, fmt.Errorf("reading open export: %w", err)
	default:
		it = &exportItem{s: s, id: open.ExecutionID, started: open.StartedAt}
		s.Log.Info().Str("execution_id", it.id).Msg("resuming the export started before")
		if _, err := s.Exp.Status(ctx, it.id); errors.Is(err, ErrNotFound) {
			// Recorded but FinOps never got it (stopped in between): start it now.
			it.rejected = s.start(ctx, spec, it.id)
		} else if err != nil {
			s.Poll("error")
			return nil, fmt.Errorf("export %s: %w", it.id, err)
		}
	}
	if it.rejected != nil {
		s.Poll("error") // a start that failed or was refused is a failed call to FinOps
		if !errors.Is(it.rejected, ErrRejected) {
			return nil, fmt.Errorf("starting export %s: %w", it.id, it.rejected)
		}
	}
	return it, nil
}

// start calls ExportToPackage; a refusal (ErrRejected) is kept on the
// item, which then fails without being polled.
func (s *Source) start(ctx context.Context, spec Spec, id string) error {
	pipeline.ReportPhase(ctx, pipeline.Phase{Name: pipeline.PhaseStarting, Since: s.Now()})
	if _, err := s.Exp.Start(ctx, spec, id); err != nil {
		return err
	}
	s.Log.Info().Str("execution_id", id).Str("definition_group", spec.DefinitionGroup).Msg("package export started")
	return nil
}

type exportItem struct {
	s        *Source
	id       string
	started  time.Time
	rejected error // FinOps refused to start it
}

func (i *exportItem) Origin() dataexport.Source {
	j := i.s.Job
	return dataexport.Source{Job: j.Name, Kind: Kind, MessageID: i.id, ExecutionID: i.id, LegalEntity: j.LegalEntity}
}

func (i *exportItem) Keys() store.MessageKeys { return store.MessageKeys{CorrelationID: i.id} }

// Redeliverable is false: two exports with identical content are two
// exports, each announced.
func (i *exportItem) Redeliverable() bool { return false }

func (i *exportItem) Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error) {
	if i.rejected != nil {
		return nil, &pipeline.UpstreamFailure{Reason: datapackage.ReasonExportFailed, Message: i.rejected.Error()}
	}
	s, job := i.s, i.s.Job
	log := s.Log.With().Str("execution_id", i.id).Logger()
	deadline := i.started.Add(job.Timeout)
	polls := 0
	pipeline.ReportPhase(ctx, pipeline.Phase{Name: pipeline.PhaseWaiting, Since: i.started})
	_, err := s.Exp.WaitForCompletion(ctx, i.id, job.PollInterval, max(deadline.Sub(s.Now()), time.Nanosecond), func(st Status) {
		polls++
		pipeline.ReportPhase(ctx, pipeline.Phase{Name: pipeline.PhaseWaiting, Status: string(st), Since: i.started})
		s.Poll("ok")
		log.Debug().Str("status", string(st)).Msg("export status")
		if polls == 1 && s.Polled != nil {
			s.Polled()
		}
	})
	var fe *FailedError
	switch {
	case errors.As(err, &fe), errors.Is(err, ErrTimeout):
		return nil, &pipeline.UpstreamFailure{Reason: datapackage.ReasonExportFailed, Message: err.Error()}
	case err != nil:
		s.Poll("error")
		return nil, fmt.Errorf("export %s: %w", i.id, err)
	}
	dl, err := s.Exp.Download(ctx, i.id, dir, job.PollInterval, progress)
	if err != nil {
		// Past the timeout the export is given up, unless the package could
		// not be written (disk full): then it stays open and is downloaded
		// again.
		if ctx.Err() == nil && !s.Now().Before(deadline) && !fault.IsEnvironment(err) {
			return nil, &pipeline.UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: err.Error()}
		}
		return nil, fmt.Errorf("downloading export %s: %w", i.id, err)
	}
	return dl, nil
}

// Done is nothing for an export: committing its package closes it.
func (i *exportItem) Done(context.Context) error { return nil }
