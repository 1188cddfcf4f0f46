package finopssim

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// StartTest runs a simulator on a loopback httptest server for the duration
// of t and returns it with its base URL.
func StartTest(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg, zerolog.Nop())
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// TokenURL returns the v2 token endpoint of a simulator at base.
func TokenURL(base string) string { return base + "/sim-tenant/oauth2/v2.0/token" }

// Clock is a settable clock for tests that share time between the simulator
// and the code under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
