package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/dequeue"
	"github.com/exportbridge/exportbridge/exporter"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Source is where a job's packages come from: a recurring-integration
// queue or a package export. The runner takes items from it until it has
// none, and never asks which kind it is.
type Source interface {
	// Next returns the next item, or nil when there is none now.
	Next(ctx context.Context) (Item, error)
}

// Item is one package to bring in.
type Item interface {
	// Origin says where it came from, for its events and its records.
	Origin() dataexport.Source
	// Keys identify it before it is downloaded.
	Keys() store.MessageKeys
	// Redeliverable: the source may hand the same package out again under
	// another id (a queue does), so identical content is recognised.
	Redeliverable() bool
	// Fetch downloads it into dir. An *UpstreamFailure says the source
	// failed it for good: a DataExportFailed is committed instead.
	Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error)
	// Done acknowledges it once its results are committed, or it was
	// recognised as processed.
	Done(ctx context.Context) error
}

// UpstreamFailure is an item its source failed for good: FinOps reports no
// file for a message, refused or failed an export, or the export's package
// could not be had before the job's timeout.
type UpstreamFailure struct {
	Reason  datapackage.Reason
	Message string
}

func (f *UpstreamFailure) Error() string { return string(f.Reason) + ": " + f.Message }

// queueSource takes messages off a recurring job's queue.
type queueSource struct {
	q    *dequeue.Source
	job  JobConfig
	poll func(result string)
}

func (s queueSource) Next(ctx context.Context) (Item, error) {
	m, err := s.q.Dequeue(ctx)
	switch {
	case err != nil:
		s.poll("error")
		return nil, fmt.Errorf("dequeue: %w", err)
	case m == nil:
		s.poll("empty")
		return nil, nil
	}
	s.poll("message")
	return queueItem{q: s.q, m: m, job: s.job}, nil
}

type queueItem struct {
	q   *dequeue.Source
	m   *dequeue.Message
	job JobConfig
}

func (i queueItem) Origin() dataexport.Source {
	return dataexport.Source{Job: i.job.Name, Kind: KindDequeue, MessageID: i.m.CorrelationID, LegalEntity: i.job.LegalEntity}
}

func (i queueItem) Keys() store.MessageKeys {
	return store.MessageKeys{CorrelationID: i.m.CorrelationID, BlobID: i.m.BlobID}
}

func (i queueItem) Redeliverable() bool { return true }

func (i queueItem) Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error) {
	if reason, missing := i.m.FileMissing(); missing {
		return nil, &UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: "FinOps reports no file for message " + i.m.CorrelationID + ": " + reason}
	}
	return i.q.Download(ctx, i.m, dir, progress)
}

func (i queueItem) Done(ctx context.Context) error { return i.q.Ack(ctx, i.m) }

// exportSource runs one package export per run: the open one if a run
// before left it (resumed, not started again), else a new one, recorded
// before FinOps is asked to start it.
type exportSource struct {
	exp    *exporter.Exporter
	ledger Ledger
	job    JobConfig
	lease  func() *store.JobLease
	now    func() time.Time
	poll   func(result string)
	polled func() // after the first status poll (the crash tests' failpoint)
	log    zerolog.Logger
	taken  bool
}

func (s *exportSource) Next(ctx context.Context) (Item, error) {
	if s.taken {
		return nil, nil
	}
	s.taken = true
	spec := exporter.Spec{Job: s.job.Name, DefinitionGroup: s.job.DefinitionGroup, LegalEntity: s.job.LegalEntity}
	open, err := s.ledger.OpenExport(ctx, s.job.Name)
	var it *exportItem
	switch {
	case errors.Is(err, store.ErrNotFound):
		started := s.now()
		it = &exportItem{s: s, id: exporter.NewExecutionID(s.job.Name, started), started: started}
		// Remember the export before starting it, so a restart resumes it.
		if err := s.ledger.StartExport(ctx, store.Export{ExecutionID: it.id, Job: s.job.Name, StartedAt: started, Lease: s.lease()}); err != nil {
			return nil, fmt.Errorf("recording export: %w", err)
		}
		it.rejected = s.start(ctx, spec, it.id)
	case err != nil:
		return nil, fmt.Errorf("reading open export: %w", err)
	default:
		it = &exportItem{s: s, id: open.ExecutionID, started: open.StartedAt}
		s.log.Info().Str("execution_id", it.id).Msg("resuming the export started before")
		if _, err := s.exp.Status(ctx, it.id); errors.Is(err, exporter.ErrNotFound) {
			// Recorded but FinOps never got it (stopped in between): start it now.
			it.rejected = s.start(ctx, spec, it.id)
		} else if err != nil {
			s.poll("error")
			return nil, fmt.Errorf("export %s: %w", it.id, err)
		}
	}
	if it.rejected != nil && !errors.Is(it.rejected, exporter.ErrRejected) {
		return nil, fmt.Errorf("starting export %s: %w", it.id, it.rejected)
	}
	return it, nil
}

// start calls ExportToPackage; a refusal (exporter.ErrRejected) is kept
// on the item, which then fails without being polled.
func (s *exportSource) start(ctx context.Context, spec exporter.Spec, id string) error {
	if _, err := s.exp.Start(ctx, spec, id); err != nil {
		return err
	}
	s.log.Info().Str("execution_id", id).Str("definition_group", spec.DefinitionGroup).Msg("package export started")
	return nil
}

type exportItem struct {
	s        *exportSource
	id       string
	started  time.Time
	rejected error // FinOps refused to start it
}

func (i *exportItem) Origin() dataexport.Source {
	j := i.s.job
	return dataexport.Source{Job: j.Name, Kind: KindPackageExport, MessageID: i.id, ExecutionID: i.id, LegalEntity: j.LegalEntity}
}

func (i *exportItem) Keys() store.MessageKeys { return store.MessageKeys{CorrelationID: i.id} }

// Redeliverable is false: two exports with identical content are two
// exports, each announced.
func (i *exportItem) Redeliverable() bool { return false }

func (i *exportItem) Fetch(ctx context.Context, dir string, progress func(received, total int64)) (*finops.Download, error) {
	if i.rejected != nil {
		return nil, &UpstreamFailure{Reason: datapackage.ReasonExportFailed, Message: i.rejected.Error()}
	}
	s, job := i.s, i.s.job
	log := s.log.With().Str("execution_id", i.id).Logger()
	deadline := i.started.Add(job.Timeout)
	polls := 0
	_, err := s.exp.WaitForCompletion(ctx, i.id, job.PollInterval, max(deadline.Sub(s.now()), time.Nanosecond), func(st exporter.Status) {
		polls++
		s.poll("ok")
		log.Debug().Str("status", string(st)).Msg("export status")
		if polls == 1 && s.polled != nil {
			s.polled()
		}
	})
	var fe *exporter.FailedError
	switch {
	case errors.As(err, &fe), errors.Is(err, exporter.ErrTimeout):
		return nil, &UpstreamFailure{Reason: datapackage.ReasonExportFailed, Message: err.Error()}
	case err != nil:
		s.poll("error")
		return nil, fmt.Errorf("export %s: %w", i.id, err)
	}
	dl, err := s.exp.Download(ctx, i.id, dir, job.PollInterval, progress)
	if err != nil {
		// Past the timeout the export is given up, unless the package could
		// not be written (disk full): then it stays open and is downloaded
		// again.
		if ctx.Err() == nil && !s.now().Before(deadline) && !fault.IsEnvironment(err) {
			return nil, &UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: err.Error()}
		}
		return nil, fmt.Errorf("downloading export %s: %w", i.id, err)
	}
	return dl, nil
}

// Done is nothing for an export: committing its package closes it.
func (i *exportItem) Done(context.Context) error { return nil }
