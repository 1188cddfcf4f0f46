package finops

import (
	"context"
	"math/rand/v2"
	"time"
)

// defaultRetryAfter is used when a 429/503 carries no usable Retry-After; the
// FinOps docs' sample client uses 30 s.
const defaultRetryAfter = 30 * time.Second

// backoff returns the wait before attempt n+1 (n ≥ 1 failed attempts so far):
// base·2^(n-1) capped at max, with "equal jitter" (half fixed, half random)
// so that many clients retrying together spread out but never retry at once.
func backoff(n int, base, ceiling time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	return half + time.Duration(rnd()*float64(half))
}

func defaultRand() float64 { return rand.Float64() }

// Sleep waits for d or until ctx ends, whichever comes first; every wait
// between FinOps calls goes through it.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
