package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Expiring is the part of the store the sweeper uses.
type Expiring interface {
	ExpiredArtifacts(ctx context.Context, cutoff time.Time, limit int) ([]store.Artifact, error)
	MarkArtifactDeleted(ctx context.Context, id string, at time.Time) error
	LiveArtifactKeys(ctx context.Context) ([]string, error)
}

// Sweeper deletes converted files older than the retention period, in
// batches, so a large backlog never loads an unbounded table at once; and
// files that no record references (what a crash left behind) once they are
// older than the orphan grace period.
type Sweeper struct {
	st      Expiring
	storage Storage
	cfg     Config
	batch   int
	now     func() time.Time
	log     zerolog.Logger
}

// NewSweeper returns a sweeper for cfg's folders (Dir, WorkDir), its
// Retention and OrphanGrace.
func NewSweeper(st Expiring, storage Storage, cfg Config, log zerolog.Logger) *Sweeper {
	return &Sweeper{st: st, storage: storage, cfg: cfg.WithDefaults(), batch: 500, now: time.Now, log: log.With().Str("component", "files").Logger()}
}

// WithClock sets the clock (tests).
func (s *Sweeper) WithClock(now func() time.Time) *Sweeper { s.now = now; return s }

// Sweep deletes every expired file and returns how many it deleted.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.cfg.Retention)
	total := 0
	for {
		arts, err := s.st.ExpiredArtifacts(ctx, cutoff, s.batch)
		if err != nil {
			return total, err
		}
		for _, a := range arts {
			if err := s.storage.Delete(ctx, a.Key); err != nil {
				return total, err
			}
			if err := s.st.MarkArtifactDeleted(ctx, a.ID, s.now()); err != nil {
				return total, err
			}
			total++
		}
		if len(arts) < s.batch {
			return total, nil
		}
	}
}

// Orphans are files a sweep found unreferenced and deleted.
type Orphans struct {
	Files int
	Bytes int64
}

// SweepOrphans deletes stored files that no live artifact references, and
// under WorkDir downloads, temporary files and conversion folders, once they
// are older than OrphanGrace: a crash between writing and committing leaves
// them, and nothing else ever would remove them. Under WorkDir only names of
// the product's own layout are touched; anything else an operator put there
// is left alone.
func (s *Sweeper) SweepOrphans(ctx context.Context) (Orphans, error) {
	live, err := s.st.LiveArtifactKeys(ctx)
	if err != nil {
		return Orphans{}, err
	}
	keep := make(map[string]bool, len(live))
	for _, k := range live {
		keep[k] = true
	}
	cutoff := s.now().Add(-s.cfg.OrphanGrace)
	var out Orphans
	err = s.storage.List(ctx, func(o ObjectInfo) error {
		if keep[o.Key] || o.ModTime.After(cutoff) { // young: perhaps being committed right now
			return nil
		}
		if err := s.storage.Delete(ctx, o.Key); err != nil {
			return err
		}
		out.Files++
		out.Bytes += o.Size
		return nil
	})
	if err != nil {
		return out, err
	}
	err = walkFiles(s.cfg.WorkDir, 2, func(p string, depth int, info fs.FileInfo) error {
		ours := isTemp(info.Name()) || isDownload(info.Name()) || depth == 2 // depth 2: a package being converted
		if !ours || info.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			out.Files++
			out.Bytes += info.Size()
			if depth == 2 {
				_ = os.Remove(filepath.Dir(p))
			}
		}
		return nil
	})
	return out, err
}

// isTemp matches the converter's temporary files (.convert-*.tmp,
// .xlsx-*.tmp).
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp")
}

// isDownload matches the FinOps client's download files.
func isDownload(name string) bool {
	return strings.HasPrefix(name, "download-") && (strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".bin"))
}

// walkFiles calls fn for each regular file at most maxDepth levels below
// root (1: directly in it), stopping at fn's first error. A missing root is
// no error.
func walkFiles(root string, maxDepth int, fn func(p string, depth int, info fs.FileInfo) error) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		depth := 0
		if rel != "." {
			depth = strings.Count(rel, string(filepath.Separator)) + 1
		}
		if d.IsDir() {
			if depth >= maxDepth {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		return fn(p, depth, info)
	})
	return err
}

// Run sweeps every interval until ctx ends, starting at once.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("retention sweep failed")
		} else if n > 0 {
			s.log.Info().Int("deleted", n).Msg("deleted files past retention")
		}
		if o, err := s.SweepOrphans(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("orphan sweep failed")
		} else if o.Files > 0 {
			s.log.Info().Int("files", o.Files).Int64("bytes", o.Bytes).Str("grace", s.cfg.OrphanGrace.String()).
				Msg("deleted files no record references (left by a crash)")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
