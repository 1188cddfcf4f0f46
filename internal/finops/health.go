package finops

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Health is what a connection's recent calls say about it: readiness
// reports it, so an operator sees FinOps refusing connections or a client
// secret refused without reading logs.
type Health struct {
	// ConsecutiveFailures counts calls in a row that failed because of the
	// connection: no answer, the token refused or unobtainable, 401/403,
	// or 5xx after the retries. Answers FinOps gave on purpose (a 4xx about
	// the request, throttling) are not the connection failing.
	ConsecutiveFailures int
	LastError           string
	LastErrorAt         time.Time
	LastSuccessAt       time.Time
}

type health struct {
	mu sync.Mutex
	h  Health
}

// connectionFault reports whether err says the connection does not work.
func connectionFault(err error) bool {
	var te *TokenError
	var se *StatusError
	switch {
	case errors.As(err, &te):
		return true
	case errors.Is(err, ErrThrottled), errors.Is(err, ErrForeignHost), errors.Is(err, ErrTooLarge):
		return false
	case errors.As(err, &se):
		return se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden ||
			se.StatusCode >= 500 || se.StatusCode == http.StatusRequestTimeout
	}
	return true // no answer: refused, reset, timed out
}

// record takes a logical call's result. A call cut short by its caller
// says nothing about the connection.
func (h *health) record(ctx context.Context, err error, now time.Time) {
	if ctx.Err() != nil && err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil || !connectionFault(err) {
		h.h.ConsecutiveFailures, h.h.LastSuccessAt = 0, now
		return
	}
	h.h.ConsecutiveFailures++
	h.h.LastError, h.h.LastErrorAt = err.Error(), now
}

// Health returns the connection's recent state.
func (c *Client) Health() Health {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	return c.health.h
}
