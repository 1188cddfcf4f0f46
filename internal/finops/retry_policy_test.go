package finops

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	lo := func() float64 { return 0 }
	hi := func() float64 { return 0.999999 }
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		require.Equal(t, want/2, backoff(n+1, time.Second, 10*time.Second, lo), "n=%d", n+1)
		require.InDelta(t, float64(want), float64(backoff(n+1, time.Second, 10*time.Second, hi)), float64(time.Millisecond))
	}
}
