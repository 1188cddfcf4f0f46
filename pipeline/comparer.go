package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/exportbridge/exportbridge/change"
	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/filename"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/telemetry"
)

// Comparisons is what the runner keeps of snapshots to compare: those
// waiting, the baselines, and the settling of each (store.Store).
type Comparisons interface {
	PendingComparisons(ctx context.Context, job string) ([]store.Comparison, error)
	Baseline(ctx context.Context, job, entity string) (*store.Baseline, error)
	CompleteComparison(ctx context.Context, d store.ComparisonDone) ([]store.Event, error)
	Artifact(ctx context.Context, id string) (*store.Artifact, error)
}

// Changes configure a job's change events.
type Changes struct {
	// Keys are the key columns of each entity whose changes are announced.
	Keys map[string][]string
	// EmptyEvent announces a comparison that found no change too.
	EmptyEvent bool
	// InitialInserts announces an entity's first snapshot as all inserts;
	// else the first snapshot only becomes the baseline.
	InitialInserts bool
}

// comparisons returns the snapshots of p to compare: its artifacts whose
// entities have key columns.
func comparisons(job Job, src dataexport.Source, p store.Package, log zerolog.Logger) []store.Comparison {
	if len(job.Changes.Keys) == 0 {
		return nil
	}
	var out []store.Comparison
	seen := map[string]bool{}
	for _, ev := range p.Events {
		if ev.Type != dataexport.TypeCompleted {
			continue
		}
		seen[ev.Entity] = true
		if _, ok := job.Changes.Keys[ev.Entity]; ok {
			out = append(out, store.Comparison{ArtifactID: ev.ArtifactID, Job: job.Name, Entity: ev.Entity, EventID: ev.ID,
				MessageID: src.MessageID, SourceKind: src.Kind, ExecutionID: src.ExecutionID, LegalEntity: src.LegalEntity, CreatedAt: p.At})
		}
	}
	for entity := range job.Changes.Keys {
		if !seen[entity] {
			log.Warn().Str("entity", entity).Msg("changes: the job names key columns for an entity the package does not hold")
		}
	}
	return out
}

// compareWaiting settles the job's waiting comparisons, oldest first:
// each snapshot against its entity's baseline. A snapshot that cannot be
// compared (its content) gets a DataExportFailed and leaves the baseline
// as it was; a fault of the disk or the storage stops here, and the
// comparison waits for the next run.
func (r *Runner) compareWaiting(ctx context.Context, jr *jobRunner, job Job, res *RunResult, log zerolog.Logger) error {
	if r.cmp == nil {
		return nil
	}
	pending, err := r.cmp.PendingComparisons(ctx, job.Name)
	if err != nil {
		return fmt.Errorf("job %s: reading the snapshots to compare: %w", job.Name, err)
	}
	for _, c := range pending {
		if err := r.compare(ctx, jr, job, c, res, log.With().Str("entity", c.Entity).Logger()); err != nil {
			return fmt.Errorf("job %s: comparing %s: %w", job.Name, c.Entity, err)
		}
	}
	return nil
}

func (r *Runner) compare(ctx context.Context, jr *jobRunner, job Job, c store.Comparison, res *RunResult, log zerolog.Logger) (err error) {
	ctx, span := r.tracer.Start(ctx, "changes.compare", trace.WithAttributes(attrJob.String(job.Name), attribute.String("exportbridge.entity", c.Entity)))
	defer func() { telemetry.End(span, err) }()
	done := store.ComparisonDone{Comparison: c, Rebase: true, Lease: jr.currentLease(), At: r.now()}
	keys := job.Changes.Keys[c.Entity]
	base, err := r.cmp.Baseline(ctx, job.Name, c.Entity)
	switch {
	case errors.Is(err, store.ErrNotFound):
		base = nil
	case err != nil:
		return err
	}
	if len(keys) == 0 || (base == nil && !job.Changes.InitialInserts) {
		// No longer keyed, or the entity's first snapshot: the baseline.
		return r.settle(ctx, done, nil, res)
	}
	cur, err := r.openArtifact(ctx, c.ArtifactID)
	if err != nil {
		return err
	}
	defer cur.Close()
	var prev io.ReadCloser
	if base != nil {
		if prev, err = r.openArtifact(ctx, base.ArtifactID); err != nil {
			return err
		}
		defer prev.Close()
	}
	tmp, err := os.CreateTemp(r.cfg.WorkDir, "changes-*.ndjson")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	var before io.Reader // nil: all inserts
	if prev != nil {
		before = prev
	}
	sum, err := change.Compare(ctx, before, cur, io.MultiWriter(tmp, h), change.Options{Keys: keys, TempDir: r.cfg.WorkDir})
	src := dataexport.Source{Job: job.Name, Kind: c.SourceKind, MessageID: c.MessageID, ExecutionID: c.ExecutionID, LegalEntity: c.LegalEntity}
	if errors.Is(err, change.ErrBadSnapshot) {
		log.Warn().Err(err).Msg("the snapshot cannot be compared: no change event; the baseline stays")
		done.Rebase = false
		done.Events = []store.NewEvent{r.route(dataexport.NewFailed(src, datapackage.ReasonChangesFailed, err.Error(), c.Entity, "", done.At))}
		return r.settle(ctx, done, nil, res)
	}
	if err != nil {
		return err
	}
	if !sum.Changed() && !job.Changes.EmptyEvent {
		log.Debug().Int64("rows", sum.After).Msg("no change since the previous snapshot")
		return r.settle(ctx, done, nil, res)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	info, err := tmp.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	name := filename.Safe(c.Entity, "entity") + ".changes.ndjson"
	a := store.Artifact{ID: files.NewID(), Job: job.Name, Entity: c.Entity, Name: name, ContentType: "application/x-ndjson",
		Bytes: info.Size(), SHA256: hex.EncodeToString(h.Sum(nil)), Records: sum.Inserted + sum.Updated + sum.Deleted, CreatedAt: done.At}
	a.Key = a.ID + "/" + name
	if err := r.storage.Put(ctx, a.Key, tmp.Name(), files.Meta{ContentType: a.ContentType}); err != nil {
		return err
	}
	previous := ""
	if base != nil {
		previous = base.EventID
	}
	ev := dataexport.NewChanged(src, dataexport.File{ArtifactID: a.ID, Entity: c.Entity, Records: a.Records, ContentType: a.ContentType,
		Bytes: a.Bytes, SHA256: a.SHA256}, dataexport.Changes{Inserted: sum.Inserted, Updated: sum.Updated, Deleted: sum.Deleted,
		Snapshot: c.EventID, Previous: previous}, done.At)
	ev.TraceParent, ev.TraceState = telemetry.Inject(ctx)
	done.Artifacts, done.Events = []store.Artifact{a}, []store.NewEvent{r.route(ev)}
	log.Info().Int64("inserted", sum.Inserted).Int64("updated", sum.Updated).Int64("deleted", sum.Deleted).Msg("changes since the previous snapshot")
	return r.settle(ctx, done, done.Artifacts, res)
}

// settle commits a comparison's outcome; stored files of an outcome that
// could not be committed are removed again. Its events count in the run's
// result, like a package's.
func (r *Runner) settle(ctx context.Context, d store.ComparisonDone, stored []store.Artifact, res *RunResult) error {
	evs, err := r.cmp.CompleteComparison(context.WithoutCancel(ctx), d)
	if errors.Is(err, store.ErrNotFound) {
		err = nil // settled already (by an earlier attempt whose answer was lost)
		r.deleteStored(stored)
	}
	if err != nil {
		r.deleteStored(stored)
		return err
	}
	for _, e := range evs {
		res.Events = append(res.Events, e.ID)
		r.obs.Event(e.Job, e.Type)
		if e.Type == dataexport.TypeFailed {
			res.Failed = append(res.Failed, failureText(e))
		}
	}
	if len(evs) > 0 && r.notify != nil {
		r.notify()
	}
	return nil
}

// openArtifact opens a stored file for reading, decoding its content
// encoding.
func (r *Runner) openArtifact(ctx context.Context, id string) (io.ReadCloser, error) {
	a, err := r.cmp.Artifact(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", id, err)
	}
	obj, err := r.storage.Open(ctx, a.Key)
	if err != nil {
		return nil, fmt.Errorf("artifact %s (%s): %w", id, a.Key, err)
	}
	switch a.ContentEncoding {
	case "", "identity":
		return obj, nil
	case "gzip":
		zr, err := gzip.NewReader(obj)
		if err != nil {
			obj.Close()
			return nil, fmt.Errorf("artifact %s: %w", id, err)
		}
		return readCloser{zr, obj}, nil
	case "zstd":
		zr, err := zstd.NewReader(obj, zstd.WithDecoderConcurrency(1))
		if err != nil {
			obj.Close()
			return nil, fmt.Errorf("artifact %s: %w", id, err)
		}
		return readCloser{zr.IOReadCloser(), obj}, nil
	}
	obj.Close()
	return nil, fmt.Errorf("artifact %s: content encoding %q", id, a.ContentEncoding)
}

type readCloser struct {
	io.Reader
	under io.Closer
}

func (rc readCloser) Close() error {
	if c, ok := rc.Reader.(io.Closer); ok {
		c.Close()
	}
	return rc.under.Close()
}
