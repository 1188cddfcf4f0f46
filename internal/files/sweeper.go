package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Expiring is the part of the store the sweeper uses.
type Expiring interface {
	ExpiredArtifacts(ctx context.Context, cutoff time.Time, limit int) ([]store.Artifact, error)
	MarkArtifactDeleted(ctx context.Context, id string, at time.Time) error
}

// Sweeper deletes converted files older than the retention period, in
// batches, so a large backlog never loads an unbounded table at once.
type Sweeper struct {
	st        Expiring
	retention time.Duration
	batch     int
	now       func() time.Time
	log       zerolog.Logger
}

// NewSweeper returns a sweeper for files older than retention.
func NewSweeper(st Expiring, retention time.Duration, log zerolog.Logger) *Sweeper {
	return &Sweeper{st: st, retention: retention, batch: 500, now: time.Now, log: log.With().Str("component", "files").Logger()}
}

// WithClock sets the clock (tests).
func (s *Sweeper) WithClock(now func() time.Time) *Sweeper { s.now = now; return s }

// Sweep deletes every expired file and returns how many it deleted.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.retention)
	total := 0
	for {
		arts, err := s.st.ExpiredArtifacts(ctx, cutoff, s.batch)
		if err != nil {
			return total, err
		}
		for _, a := range arts {
			if err := os.Remove(a.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return total, err
			}
			_ = os.Remove(filepath.Dir(a.Path)) // the package folder, once empty
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

// Run sweeps every interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("retention sweep failed")
		} else if n > 0 {
			s.log.Info().Int("deleted", n).Msg("deleted files past retention")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
