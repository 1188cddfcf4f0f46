package publish

import (
	"sync"
	"time"
)

// Circuit states.
const (
	CircuitClosed   = "closed"    // deliveries flow
	CircuitOpen     = "open"      // the target keeps failing: only probes go out
	CircuitHalfOpen = "half_open" // one probe attempt is out
)

// BreakerConfig shapes a subscription's circuit breaker.
type BreakerConfig struct {
	// Threshold is how many consecutive failed attempts (no answer, 408, 429,
	// 5xx) open the circuit. 0 disables the breaker.
	Threshold int
	// MinInterval is the wait before the first probe; it doubles after each
	// failed probe up to MaxInterval.
	MinInterval, MaxInterval time.Duration
}

// BreakerState is a breaker as the API shows it.
type BreakerState struct {
	State               string    `json:"state"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Since               time.Time `json:"since,omitzero"`         // when it opened
	NextProbeAt         time.Time `json:"next_probe_at,omitzero"` // when open
}

// breaker is one target's circuit. While open, the target's due deliveries
// wait without spending attempts; a single probe attempt goes out at growing
// intervals, and its success closes the circuit. Without it, a dead target
// with thousands of pending deliveries takes an attempt for each of them at
// every retry delay, and the store work of recording those failures slows
// every other subscription.
type breaker struct {
	cfg BreakerConfig

	mu       sync.Mutex
	state    string
	failures int
	since    time.Time
	interval time.Duration
	probeAt  time.Time
}

func newBreaker(cfg BreakerConfig) *breaker {
	return &breaker{cfg: cfg, state: CircuitClosed}
}

// allow returns how many deliveries may be claimed now (at most want) and
// whether they are a probe: all of them while closed, one probe when open
// and its time has come, none while a probe is out or before the probe time.
func (b *breaker) allow(now time.Time, want int) (n int, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case CircuitClosed:
		return want, false
	case CircuitOpen:
		if !now.Before(b.probeAt) && want > 0 {
			b.state = CircuitHalfOpen
			return 1, true
		}
	}
	return 0, false
}

// closed says whether deliveries flow (no probe is needed to send).
func (b *breaker) closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == CircuitClosed
}

// unused hands back a probe slot that found nothing to send.
func (b *breaker) unused() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == CircuitHalfOpen {
		b.state = CircuitOpen
	}
}

// record takes an attempt's result (ok: the target answered; a final 4xx
// counts, since the target is up) and returns the new state when it changed
// ("" otherwise). Results of attempts sent before the circuit opened may
// still arrive while it is open: a success closes it all the same, a
// failure only counts.
func (b *breaker) record(ok, probe bool, now time.Time) (changed string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.Threshold <= 0 {
		return ""
	}
	if ok {
		b.failures = 0
		if b.state != CircuitClosed {
			b.state, b.interval = CircuitClosed, 0
			return CircuitClosed
		}
		return ""
	}
	b.failures++
	switch {
	case probe && b.state == CircuitHalfOpen:
		// Still failing: wait longer before the next probe.
		b.interval = min(b.interval*2, b.cfg.MaxInterval)
		b.state, b.probeAt = CircuitOpen, now.Add(b.interval)
	case b.state == CircuitClosed && b.failures >= b.cfg.Threshold:
		b.interval = b.cfg.MinInterval
		b.state, b.since, b.probeAt = CircuitOpen, now, now.Add(b.interval)
		return CircuitOpen
	}
	return ""
}

// nextProbe is when an open circuit next lets a probe out (zero otherwise).
func (b *breaker) nextProbe() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == CircuitOpen {
		return b.probeAt
	}
	return time.Time{}
}

func (b *breaker) snapshot() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BreakerState{State: b.state, ConsecutiveFailures: b.failures}
	if b.state != CircuitClosed {
		s.Since, s.NextProbeAt = b.since, b.probeAt
	}
	return s
}
