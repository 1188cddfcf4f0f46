package publish

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreakerStateMachine(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	b := newBreaker(BreakerConfig{Threshold: 3, MinInterval: time.Second, MaxInterval: 4 * time.Second})

	n, probe := b.allow(t0, 8)
	require.Equal(t, 8, n)
	require.False(t, probe)
	require.Equal(t, "", b.record(false, false, t0))
	require.Equal(t, "", b.record(false, false, t0))
	require.Equal(t, "", b.record(true, false, t0), "a success resets the count")
	require.Equal(t, "", b.record(false, false, t0))
	require.Equal(t, "", b.record(false, false, t0))
	require.Equal(t, CircuitOpen, b.record(false, false, t0), "third consecutive failure opens")
	require.Equal(t, "", b.record(false, false, t0), "late failures of attempts already out change nothing")

	n, _ = b.allow(t0.Add(999*time.Millisecond), 8)
	require.Zero(t, n, "nothing before the probe time")
	require.Equal(t, t0.Add(time.Second), b.nextProbe())

	// Probe times grow: 1s, 2s, 4s, 4s (capped).
	at := t0
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		at = at.Add(wait)
		n, probe = b.allow(at, 8)
		require.Equal(t, 1, n, "one probe at %v", at.Sub(t0))
		require.True(t, probe)
		n, _ = b.allow(at, 8)
		require.Zero(t, n, "no second probe while one is out")
		require.Equal(t, "", b.record(false, true, at))
		require.Equal(t, CircuitOpen, b.snapshot().State)
	}
	require.Equal(t, at.Add(4*time.Second), b.snapshot().NextProbeAt)

	// A probe slot that found nothing due is handed back.
	at = at.Add(4 * time.Second)
	_, probe = b.allow(at, 8)
	require.True(t, probe)
	b.unused()
	_, probe = b.allow(at, 8)
	require.True(t, probe, "the slot is usable again")

	require.Equal(t, CircuitClosed, b.record(true, true, at), "the first success closes")
	n, _ = b.allow(at, 8)
	require.Equal(t, 8, n)
	require.Equal(t, BreakerState{State: CircuitClosed}, b.snapshot())
}

func TestBreakerDisabled(t *testing.T) {
	t.Parallel()
	b := newBreaker(BreakerConfig{Threshold: -1})
	for range 100 {
		require.Equal(t, "", b.record(false, false, time.Now()))
	}
	n, _ := b.allow(time.Now(), 4)
	require.Equal(t, 4, n)
}
