package publish

import (
	"errors"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Outcome labels, for metrics and logs.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
)

// nextOutcome decides what happens after attempt number attempt (1-based)
// ended with err: delivered; retried after the subscription's delay for
// this attempt (or the receiver's longer Retry-After); or dead-lettered when
// the error is final or the delays are used up.
func nextOutcome(delays []time.Duration, attempt, status int, err error, now time.Time) store.Outcome {
	if err == nil {
		return store.Outcome{State: store.StateDelivered, Status: status, At: now}
	}
	o := store.Outcome{State: store.StateDead, Status: status, Error: err.Error(), At: now}
	var se *SendError
	if !errors.As(err, &se) {
		return o
	}
	if !se.Retryable || attempt > len(delays) {
		return o
	}
	delay := delays[attempt-1]
	if se.RetryAfter > delay {
		delay = se.RetryAfter
	}
	o.State, o.NextAt = store.StatePending, now.Add(delay)
	return o
}

func outcomeLabel(state string) string {
	switch state {
	case store.StateDelivered:
		return OutcomeDelivered
	case store.StatePending:
		return OutcomeRetry
	default:
		return OutcomeDead
	}
}
