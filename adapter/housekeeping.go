package adapter

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// recordSweeper forgets what the store keeps only for a while: delivery
// attempts past store.attempt_retention and Idempotency-Keys past their
// 24 h window.
type recordSweeper struct {
	st interface {
		SweepAttempts(ctx context.Context, before time.Time) (int, error)
		SweepIdempotencyKeys(ctx context.Context, before time.Time) (int, error)
		SweepSessions(ctx context.Context, before time.Time) (int, error)
	}
	attempts, keys time.Duration
	log            zerolog.Logger
}

func (s recordSweeper) sweep(ctx context.Context, now time.Time) {
	if n, err := s.st.SweepAttempts(ctx, now.Add(-s.attempts)); err != nil {
		s.log.Error().Err(err).Msg("sweeping delivery attempts failed")
	} else if n > 0 {
		s.log.Info().Int("attempts", n).Dur("older_than", s.attempts).Msg("forgot old delivery attempts")
	}
	if _, err := s.st.SweepIdempotencyKeys(ctx, now.Add(-s.keys)); err != nil {
		s.log.Error().Err(err).Msg("sweeping idempotency keys failed")
	}
	if _, err := s.st.SweepSessions(ctx, now); err != nil {
		s.log.Error().Err(err).Msg("sweeping expired sessions failed")
	}
}

// run sweeps at once and then every interval until ctx ends.
func (s recordSweeper) run(ctx context.Context, every time.Duration) {
	s.sweep(ctx, time.Now())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sweep(ctx, now)
		}
	}
}
