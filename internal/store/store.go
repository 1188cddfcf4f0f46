// Package store is exportbridge's durable state: source messages already
// processed (for de-duplication), package exports in progress, converted
// files (artifacts), events with their ControlNumber sequence, one delivery
// per event and subscription with its retry state, dead letters, paused
// subscriptions and settings.
//
// Store is the interface; SQLite (modernc.org/sqlite, no cgo) implements it
// today, and a PostgreSQL implementation for several replicas is planned:
// the SQL is kept portable and ClaimDue is a single call so it can become
// SELECT … FOR UPDATE SKIP LOCKED. storetest holds the conformance suite
// every implementation must pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exportbridge/exportbridge/internal/fault"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a row with that name exists already.
	ErrExists = errors.New("store: already exists")
	// ErrDuplicate: CommitPackage found the source message already recorded.
	ErrDuplicate = errors.New("store: source message already processed")
	// ErrLost: the database was deleted or replaced under the running
	// process. Everything written from then on would be lost: the process
	// must stop (its supervisor restarts it on the real database). It is an
	// environment fault (fault.ErrEnvironment).
	ErrLost = fmt.Errorf("store: the database was deleted or replaced while open: %w", fault.ErrEnvironment)
	// ErrReadOnly: the database cannot be written. An environment fault.
	ErrReadOnly = fmt.Errorf("store: the database is read-only: %w", fault.ErrEnvironment)
)

// Delivery states.
const (
	StatePending   = "pending"
	StateInFlight  = "in_flight"
	StateDelivered = "delivered"
	StateDead      = "dead"
	// StateSuperseded: a newer snapshot of the entity was committed for a
	// subscription with supersede before this one was sent; it is not sent.
	StateSuperseded = "superseded"
)

// Store is everything exportbridge keeps across restarts.
type Store interface {
	// FindMessage returns the recorded source message of job matching any
	// non-empty key, or ErrNotFound.
	FindMessage(ctx context.Context, job string, keys MessageKeys) (*Message, error)
	// MarkAcked records that the source message was acknowledged.
	MarkAcked(ctx context.Context, job, messageID string, at time.Time) error

	// AcquireJobLease takes job's lease for owner until until: when no one
	// holds it, when it expired, or when owner held it before (a new token
	// each time). Otherwise a *LeaseHeldError (ErrLeaseHeld) names the
	// holder. Runs left running by a previous holder become abandoned.
	AcquireJobLease(ctx context.Context, job, owner string, now, until time.Time) (JobLease, error)
	// RenewJobLease extends a lease still held at now; ErrLeaseLost if not.
	RenewJobLease(ctx context.Context, l JobLease, now, until time.Time) (JobLease, error)
	// ReleaseJobLease gives a held lease up (nothing when it was lost).
	ReleaseJobLease(ctx context.Context, l JobLease) error
	// JobLeases returns the leases held at now, by job.
	JobLeases(ctx context.Context, now time.Time) (map[string]JobLease, error)
	// StartRun records a run starting and returns its id; FinishRun records
	// how it ended; Runs lists job's runs, newest first.
	StartRun(ctx context.Context, r Run) (int64, error)
	FinishRun(ctx context.Context, r Run) error
	Runs(ctx context.Context, job string, limit int) ([]Run, error)

	// StartExport records a package export before it is started in FinOps,
	// so a restart resumes it instead of starting another. With e.Lease set
	// it is refused (ErrLeaseLost) unless that lease is still held.
	StartExport(ctx context.Context, e Export) error
	// OpenExport returns job's unfinished export, or ErrNotFound.
	OpenExport(ctx context.Context, job string) (*Export, error)
	// Export returns the export executionID, in any state, or ErrNotFound.
	Export(ctx context.Context, executionID string) (*Export, error)
	// FinishExport closes an export with state ("committed" or "failed").
	FinishExport(ctx context.Context, executionID, state, lastError string, at time.Time) error

	// CommitPackage stores, in one transaction, a package's source message
	// record, its artifacts, its events (assigning ControlNumbers) and their
	// deliveries, and closes its export when ExecutionID is set. It is
	// durable when it returns. ErrDuplicate when the message was recorded;
	// ErrLeaseLost when p.Lease is set and no longer held at p.At.
	CommitPackage(ctx context.Context, p Package) ([]Event, error)
	// AppendEvents stores events that come from no source message, with one
	// pending delivery (due at at) per subscription of each, in one
	// transaction. ControlNumbers stay strictly increasing in commit order
	// across CommitPackage and AppendEvents.
	AppendEvents(ctx context.Context, events []NewEvent, at time.Time) ([]Event, error)
	// AppendEventsOnce is AppendEvents under an idempotency key: when the
	// key's principal used it at or after key.Since, nothing is stored and
	// the events stored then are returned (ID, Topic, ControlNumber),
	// replayed true. Concurrent calls with one key store once.
	AppendEventsOnce(ctx context.Context, key IdempotencyKey, events []NewEvent, at time.Time) (out []Event, replayed bool, err error)
	// EventsAfter returns up to limit events with a ControlNumber above
	// after, in ControlNumber order. A reader that asks again from the last
	// number it saw never misses an event committed later.
	EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error)
	// LatestControlNumber is the highest ControlNumber stored (0: none).
	LatestControlNumber(ctx context.Context) (int64, error)
	// SweepIdempotencyKeys forgets keys used before before.
	SweepIdempotencyKeys(ctx context.Context, before time.Time) (int, error)

	// Tokens created through the API, looked up by hash.
	CreateToken(ctx context.Context, t StoredToken) error
	DeleteToken(ctx context.Context, name string) error
	Tokens(ctx context.Context) ([]StoredToken, error)
	TokenByHash(ctx context.Context, hash []byte) (StoredToken, error)

	// Sessions of the web page, by the hash of their id. SessionByHash
	// answers ErrNotFound for a missing or expired session.
	CreateSession(ctx context.Context, s Session) error
	SessionByHash(ctx context.Context, hash []byte, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
	// SweepSessions forgets sessions expired before before.
	SweepSessions(ctx context.Context, before time.Time) (int, error)

	// Attempts returns a delivery's recorded attempts, oldest first.
	Attempts(ctx context.Context, deliveryID int64) ([]Attempt, error)
	// SweepAttempts forgets attempts made before before.
	SweepAttempts(ctx context.Context, before time.Time) (int, error)

	// Subscriptions created through the API; every change bumps the
	// version every process polls.
	CreateSubscription(ctx context.Context, sub StoredSubscription) error
	UpdateSubscription(ctx context.Context, name string, spec []byte, at time.Time) error
	DeleteSubscription(ctx context.Context, name string) error
	StoredSubscriptions(ctx context.Context) ([]StoredSubscription, int64, error)
	SubscriptionsVersion(ctx context.Context) (int64, error)

	// ClaimDue moves up to limit due pending deliveries of subscription to
	// in_flight, leased to owner (a process instance) until leaseUntil,
	// counting an attempt, and returns them with their events and what an
	// attempt needs of their artifacts (ID, Name, Key, Job, Entity,
	// DeletedAt).
	// Concurrent claims, from any number of processes, never share a row.
	ClaimDue(ctx context.Context, owner, subscription string, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// Complete records, in one transaction, the outcomes of owner's attempts.
	// It returns the ids whose lease owner no longer holds (taken back, or
	// expired before the outcome's time); those rows are left unchanged.
	Complete(ctx context.Context, owner string, cs ...Completion) (stale []int64, err error)
	// Release returns owner's claimed deliveries that were never attempted
	// to pending, as they were before the claim (the attempt count too).
	// Rows owner no longer holds are left alone.
	Release(ctx context.Context, owner string, ids ...int64) error
	// RenewLeases extends to until every unexpired lease owner holds.
	RenewLeases(ctx context.Context, owner string, now, until time.Time) (int, error)
	// Rescue returns to pending, due at now, the in_flight deliveries whose
	// lease expired before now, whoever held them. A live process renews
	// its leases, so only the work of a dead or stalled one is rescued.
	Rescue(ctx context.Context, now time.Time) (int, error)
	// Replay returns dead (or, with f.State, other) deliveries to pending
	// with a fresh attempt count; the events keep their ids.
	Replay(ctx context.Context, f Filter, now time.Time) (int, error)
	// Deliveries lists deliveries, newest first.
	Deliveries(ctx context.Context, f Filter) ([]Delivery, error)
	// CountDeliveries counts the deliveries f selects (its Limit aside).
	CountDeliveries(ctx context.Context, f Filter) (int, error)
	// Counts returns the number of deliveries per state.
	Counts(ctx context.Context) (map[string]int, error)

	// Pause and Resume a subscription; Paused lists the paused ones.
	Pause(ctx context.Context, subscription, reason string, at time.Time) error
	Resume(ctx context.Context, subscription string) error
	Paused(ctx context.Context) (map[string]string, error)

	// Artifact returns a converted file's record.
	Artifact(ctx context.Context, id string) (*Artifact, error)
	// PendingComparisons lists a job's snapshots waiting to be compared,
	// in commit order; Baseline is what the next of job and entity is
	// compared with (ErrNotFound: none yet); CompleteComparison settles
	// one (ErrNotFound if it was settled already).
	PendingComparisons(ctx context.Context, job string) ([]Comparison, error)
	Baseline(ctx context.Context, job, entity string) (*Baseline, error)
	CompleteComparison(ctx context.Context, d ComparisonDone) ([]Event, error)
	// ExpiredArtifacts lists up to limit live artifacts created before
	// cutoff, except baselines and snapshots waiting to be compared.
	ExpiredArtifacts(ctx context.Context, cutoff time.Time, limit int) ([]Artifact, error)
	// MarkArtifactDeleted records that an artifact's file was removed.
	MarkArtifactDeleted(ctx context.Context, id string, at time.Time) error
	// LiveArtifactKeys returns the storage keys of every artifact not
	// deleted: the files the orphan sweep must keep.
	LiveArtifactKeys(ctx context.Context) ([]string, error)

	// SetSettingIfAbsent stores value unless the key exists, and returns the
	// value now stored.
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)

	// Ping checks the store is reachable and writable, and is still the
	// database it opened (readiness; before each acknowledgement). ErrLost
	// or ErrReadOnly when not.
	Ping(ctx context.Context) error
	Close() error
}

// MessageKeys identify a source message across redeliveries.
type MessageKeys struct {
	CorrelationID string
	BlobID        string
	ContentSHA256 string
}

// Message is a recorded source message.
type Message struct {
	Job, ID   string // ID: CorrelationId for dequeue, executionId for exports
	Keys      MessageKeys
	Committed time.Time
	Acked     time.Time // zero until acknowledged
}

// Export states.
const (
	ExportStarted   = "started"
	ExportCommitted = "committed"
	ExportFailed    = "failed"
)

// Export is a package export in progress or finished.
type Export struct {
	ExecutionID string
	Job         string
	State       string // started | committed | failed
	StartedAt   time.Time
	UpdatedAt   time.Time
	LastError   string
	Lease       *JobLease // fences StartExport
}

// Artifact is a converted file.
type Artifact struct {
	ID              string
	Job, Entity     string
	Name            string // file name in the download URL
	Key             string // storage key: <package id>/<file name>
	ContentType     string
	ContentEncoding string
	Bytes           int64
	SHA256          string
	Records         int64
	CreatedAt       time.Time
	DeletedAt       time.Time // zero while the file exists
}

// Event is a stored event. Body is its JSON as committed; fields that
// change per attempt (ControlNumber, a fresh DownloadURL) are filled in by
// the contract's renderer when it is sent. CEType, Source and Subject are
// its CloudEvents attributes, sent as they are.
type Event struct {
	ID            string // EventId
	ControlNumber int64  // assigned at commit, strictly increasing in commit order
	Type          string // the contract's name for it, e.g. DataExportCompleted
	CEType        string // CloudEvents type, e.g. com.exportbridge.dataexport.completed
	Source        string // CloudEvents source, e.g. /exportbridge/jobs/vendors
	Subject       string // CloudEvents subject, e.g. the entity
	Topic         string
	Job, Entity   string
	Body          []byte
	ArtifactID    string // "" for DataExportFailed
	CreatedAt     time.Time
	// TraceParent and TraceState are the W3C trace context of the work
	// that made the event ("" when none was traced): its delivery attempts
	// continue that trace.
	TraceParent, TraceState string
}

// NewEvent is an event to commit with the subscriptions to deliver it to.
type NewEvent struct {
	Event
	Subscriptions []string
	// Supersede are those of Subscriptions whose pending deliveries of
	// older events of the same job, entity and type this one supersedes.
	Supersede []string
}

// Package is everything CommitPackage stores for one source message.
type Package struct {
	Job         string
	MessageID   string
	Keys        MessageKeys
	ExecutionID string    // set for package exports: the export is closed, as committed or (with ExportError) failed
	ExportError string    // why the export failed; it is closed as failed
	Lease       *JobLease // when set, the commit is refused unless it is still held
	Artifacts   []Artifact
	Events      []NewEvent
	// Comparisons are the snapshots (artifacts of entities with key
	// columns) to compare with their baselines once committed.
	Comparisons []Comparison
	At          time.Time
}

// Comparison is a committed snapshot waiting to be compared with the
// baseline of its job and entity.
type Comparison struct {
	ArtifactID, Job, Entity string
	EventID                 string // the snapshot's DataExportCompleted
	// Where the package came from, for the change event's header.
	MessageID, SourceKind, ExecutionID, LegalEntity string
	CreatedAt                                       time.Time
}

// Baseline is the snapshot the next one of its job and entity is compared
// with.
type Baseline struct {
	Job, Entity, ArtifactID, EventID string
}

// ComparisonDone settles a comparison in one transaction: its changes file
// and events (a DataExportChanged, or a DataExportFailed), and whether the
// snapshot becomes the baseline (not when it could not be compared).
type ComparisonDone struct {
	Comparison Comparison
	Artifacts  []Artifact
	Events     []NewEvent
	Rebase     bool
	Lease      *JobLease // the commit is refused unless it is still held
	At         time.Time
}

// Delivery is one event to one subscription.
type Delivery struct {
	ID            int64
	Subscription  string
	State         string
	Attempt       int // attempts made, including the claimed one
	NextAttemptAt time.Time
	LeaseOwner    string // the process instance holding it, while in_flight
	LeaseUntil    time.Time
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   time.Time
	Event         Event
	Artifact      *Artifact // nil for events without a file
}

// StoredSubscription is a subscription created through the API; Spec is
// its settings as the delivery engine encodes them (JSON).
type StoredSubscription struct {
	Name      string
	Spec      []byte
	CreatedBy string // the token that created it
	CreatedAt time.Time
	UpdatedAt time.Time
}

// StoredToken is an API token created through the API: its hash only.
type StoredToken struct {
	Name      string
	Hash      []byte // SHA-256 of the token
	Scopes    []string
	CreatedBy string
	CreatedAt time.Time
}

// Session is a web page session: the hash of its id (the cookie's value
// is the id), the hash of the token it was started with, its CSRF token
// and its expiry.
type Session struct {
	Hash      []byte
	TokenHash []byte
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// IdempotencyKey is a client's Idempotency-Key, per principal (token
// name), remembered since Since.
type IdempotencyKey struct {
	Principal, Key string
	Since          time.Time
}

// Completion is the outcome of an attempt of the delivery with ID.
type Completion struct {
	ID      int64
	Outcome Outcome
	// Attempt, when set, is recorded in the delivery's history (with the
	// owner as the process that made it), stale or not: it happened.
	Attempt *Attempt
}

// Attempt is one recorded delivery attempt.
type Attempt struct {
	DeliveryID int64
	Number     int
	StartedAt  time.Time
	Duration   time.Duration
	Status     int    // 0: no response
	Error      string // empty when delivered
	Response   string // the start of the response body (≤ 1 KB, redacted)
	Process    string // the process instance that made it
}

// Outcome is the result of one attempt.
type Outcome struct {
	State  string    // delivered | pending (retry) | dead
	NextAt time.Time // when State is pending
	Status int       // HTTP status, 0 when none
	Error  string
	At     time.Time
}

// Filter selects deliveries.
type Filter struct {
	State        string // "" = any (Replay: "" means dead)
	Subscription string
	ID           int64
	EventIDs     []string // any of these events
	Job          string   // the event's job
	Entity       string   // the event's entity
	// Since and Until bound the delivery's creation time: Since <= t < Until
	// (zero: unbounded).
	Since, Until time.Time
	// Before is the paging cursor: only deliveries with a smaller ID (lists
	// are newest first, so it is the last ID of the previous page).
	Before int64
	Limit  int // default 100
}
