package publish

import (
	"errors"
	"time"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Outcome labels, for metrics and logs.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
)

// maxErrorText bounds the last_error stored with a delivery.
const maxErrorText = 1024

// nextOutcome decides what happens after attempt number attempt (1-based)
// ended with err: delivered; retried after the subscription's delay for
// this attempt (or the receiver's longer Retry-After, capped at
// maxRetryAfter so that no receiver can park a delivery for years); or
// dead-lettered when the error is final or the delays are used up. The
// stored error is redacted and bounded: it reaches the API and the CLI.
func nextOutcome(delays []time.Duration, maxRetryAfter time.Duration, attempt, status int, err error, now time.Time) store.Outcome {
	if err == nil {
		return store.Outcome{State: store.StateDelivered, Status: status, At: now}
	}
	o := store.Outcome{State: store.StateDead, Status: status, Error: redact.Excerpt(redact.String(err.Error()), maxErrorText), At: now}
	var se *SendError
	if !errors.As(err, &se) {
		return o
	}
	if !se.Retryable || attempt > len(delays) {
		return o
	}
	delay := max(delays[attempt-1], min(se.RetryAfter, maxRetryAfter))
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
