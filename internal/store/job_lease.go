package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/exportbridge/exportbridge/internal/fault"
)

// JobLease says which process runs a job. A job runs in one process at a
// time across every process that shares the store: the holder renews the
// lease while the run lasts, and any process may take it over once it
// expired. Token grows with every new holder and fences the holder's
// writes: a commit by a process whose lease was taken over is refused
// inside the commit's own transaction.
type JobLease struct {
	Job       string
	Owner     string // process instance
	Token     int64
	ExpiresAt time.Time
}

// Sentinel errors of job leases.
var (
	// ErrLeaseHeld: another live process holds the job's lease. The error is
	// a *LeaseHeldError naming it.
	ErrLeaseHeld = errors.New("store: the job is running in another process")
	// ErrLeaseLost: the lease expired or was taken over; the holder must
	// stop, writing and acknowledging nothing more. An environment fault:
	// the work is done again by whoever holds the lease.
	ErrLeaseLost = fmt.Errorf("store: the job lease was lost: %w", fault.ErrEnvironment)
)

// LeaseHeldError names the process that holds a job's lease.
type LeaseHeldError struct {
	Job, Owner string
	ExpiresAt  time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("job %s is running in %s (lease until %s)", e.Job, e.Owner, e.ExpiresAt.UTC().Format(time.RFC3339))
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// Run is one run of a job, as recorded in the store.
type Run struct {
	ID         int64
	Job        string
	Owner      string // the process instance that ran it
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	// Outcome: running, ok, error, environment_fault, cancelled, or
	// abandoned (its process died; another took the job over).
	Outcome    string
	Packages   int
	Duplicates int
	Events     int
	Error      string
}

// Run outcomes the store itself writes.
const (
	RunRunning   = "running"
	RunAbandoned = "abandoned"
)
