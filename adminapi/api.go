// Package adminapi is the admin HTTP API under /api: jobs (with their runs
// and where they run), starting a run, deliveries and replays,
// subscriptions and resuming them. It reads and acts through small
// interfaces, so it is the same from every process that shares a store.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
)

// Store is what the API reads from the store.
type Store interface {
	JobLeases(ctx context.Context, now time.Time) (map[string]store.JobLease, error)
	Runs(ctx context.Context, job string, limit int) ([]store.Run, error)
	Deliveries(ctx context.Context, f store.Filter) ([]store.Delivery, error)
	Attempts(ctx context.Context, deliveryID int64) ([]store.Attempt, error)
	Paused(ctx context.Context) (map[string]string, error)
	CountDeliveries(ctx context.Context, f store.Filter) (int, error)
	Counts(ctx context.Context) (map[string]int, error)
}

// Runner runs jobs (pipeline.Runner).
type Runner interface {
	Has(name string) bool
	Run(ctx context.Context, name string, prog pipeline.Progress) (*pipeline.RunResult, error)
}

// Publisher replays deliveries and resumes subscriptions (publish.Publisher).
type Publisher interface {
	Replay(ctx context.Context, f store.Filter) (int, error)
	Resume(ctx context.Context, subscription string) error
	Pause(ctx context.Context, subscription, reason string) error
	Circuits() map[string]publish.BreakerState
}

// SubscriptionStore keeps the subscriptions created through the API.
type SubscriptionStore interface {
	CreateSubscription(ctx context.Context, sub store.StoredSubscription) error
	UpdateSubscription(ctx context.Context, name string, spec []byte, at time.Time) error
	DeleteSubscription(ctx context.Context, name string) error
	StoredSubscriptions(ctx context.Context) ([]store.StoredSubscription, int64, error)
}

// ErrInvalid marks a request's bad parameter.
var ErrInvalid = errors.New("invalid")

// Job is a configured job as the API lists it.
type Job struct {
	Name, Kind, Schedule string
}

// API serves /api.
type API struct {
	// Jobs lists the configured jobs (they change with a reload).
	Jobs          func() []Job
	Store         Store
	Runner        Runner
	Publisher     Publisher
	Subscriptions *publish.Registry
	// Stored keeps runtime subscriptions; Configured names those of
	// config.toml (read-only here); Reload applies a change to this
	// process's registry at once (others follow the store).
	Stored     SubscriptionStore
	Configured func(name string) bool
	Reload     func(ctx context.Context)
	// SubscriptionHosts, when set, are the only hosts runtime
	// subscriptions may target ("hooks.example.com", "*.example.com",
	// "host:8443").
	SubscriptionHosts []string
	// LogLevel and SetLogLevel read and change the process's log level.
	LogLevel    func() string
	SetLogLevel func(level string) error
	// StoredTokens keeps tokens created through the API; ConfigTokens are
	// those of config.toml (values unused here).
	StoredTokens TokenStore
	ConfigTokens []access.Token
	// NextRun says when a job runs next (zero: not scheduled); nil when
	// this process schedules nothing.
	NextRun func(job string) time.Time
	// Body, when set, renders an event's body as its receivers get it,
	// without what is minted per attempt (the DownloadURL); else the stored
	// body is shown.
	Body func(store.Event) []byte
	// Readiness answers what /readyz does: each check ("ok" or what is
	// wrong) and whether all are ok.
	Readiness func(ctx context.Context) (map[string]string, bool)
	// Background starts fn outside the request (a run started from the API
	// outlives it; the app stops it at shutdown).
	Background func(fn func(ctx context.Context))
	Log        zerolog.Logger
}

// Handler returns the routes behind keys. Reading needs the read scope
// (or admin); changing needs admin, except that a token with subscribe
// scopes manages subscriptions within its patterns. Every change is
// logged with the token's name.
func (a *API) Handler(keys *access.Keyring) http.Handler {
	return keys.Require(a.Routes())
}

// Routes returns the routes for requests that carry their principal
// already (access.WithPrincipal): the web page's, whose sessions stand for
// a token.
func (a *API) Routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", a.reader(a.status))
	mux.HandleFunc("GET /api/jobs", a.reader(a.jobs))
	mux.HandleFunc("POST /api/jobs/{name}/run", a.admin(a.runJob))
	mux.HandleFunc("GET /api/deliveries", a.reader(a.deliveries))
	mux.HandleFunc("GET /api/deliveries/count", a.reader(a.countDeliveries))
	mux.HandleFunc("GET /api/deliveries/{id}", a.reader(a.delivery))
	mux.HandleFunc("POST /api/deliveries/{id}/replay", a.admin(a.replayOne))
	mux.HandleFunc("POST /api/deliveries/replay", a.admin(a.replay))
	a.subscriptionRoutes(mux)
	a.tokenRoutes(mux)
	mux.HandleFunc("GET /api/log-level", a.reader(a.logLevel))
	mux.HandleFunc("PUT /api/log-level", a.admin(a.setLogLevel))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.Log.Info().Str("token", Principal(r).Name).Str("method", r.Method).Str("path", r.URL.Path).Msg("API change requested")
		}
		mux.ServeHTTP(w, r)
	})
}

// Principal is the request's authenticated token.
func Principal(r *http.Request) *access.Principal { return access.PrincipalOf(r) }

func forbid(w http.ResponseWriter, p *access.Principal, scope string) {
	apiError(w, http.StatusForbidden, fmt.Sprintf("token %q lacks scope %s", p.Name, scope))
}

// reader lets read and admin tokens through.
func (a *API) reader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := Principal(r); !p.CanRead() {
			forbid(w, p, access.ScopeRead)
			return
		}
		h(w, r)
	}
}

// admin lets admin tokens through.
func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := Principal(r); !p.Admin() {
			forbid(w, p, access.ScopeAdmin)
			return
		}
		h(w, r)
	}
}

// WriteJSON answers v as indented JSON with status; the product's other
// JSON endpoints (health, readiness) answer through it too.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// JobView is a job as GET /api/jobs answers it.
type JobView struct {
	Name     string     `json:"name"`
	Kind     string     `json:"kind"`
	Schedule string     `json:"schedule"`
	NextRun  *time.Time `json:"next_run,omitempty"`
	// Running and RunningIn come from the job's lease in the store: the same
	// answer from every process that shares it.
	Running   bool   `json:"running"`
	RunningIn string `json:"running_in,omitempty"`
	// LastRun is the newest finished run, from the store's run history;
	// RecentRuns the newest finished ones (up to 5), newest first.
	LastRun    *RunView  `json:"last_run,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	RecentRuns []RunView `json:"recent_runs"`
}

// RunView is a finished run.
type RunView struct {
	ID         int64     `json:"id"`
	Process    string    `json:"process"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Outcome    string    `json:"outcome"`
	Packages   int       `json:"packages"`
	Duplicates int       `json:"duplicates"`
	Events     int       `json:"events"`
	Error      string    `json:"error,omitempty"`
}

func (a *API) jobs(w http.ResponseWriter, r *http.Request) {
	out, err := a.jobViews(r.Context())
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) jobViews(ctx context.Context) ([]JobView, error) {
	leases, err := a.Store.JobLeases(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	out := []JobView{}
	for _, j := range a.Jobs() {
		v := JobView{Name: j.Name, Kind: j.Kind, Schedule: j.Schedule}
		if l, ok := leases[j.Name]; ok {
			v.Running, v.RunningIn = true, l.Owner
		}
		runs, err := a.Store.Runs(ctx, j.Name, 5)
		if err != nil {
			return nil, err
		}
		v.RecentRuns = []RunView{}
		for _, run := range runs {
			if run.Outcome == store.RunRunning {
				continue
			}
			v.RecentRuns = append(v.RecentRuns, RunView{ID: run.ID, Process: run.Owner, Started: run.StartedAt, Finished: run.FinishedAt, Outcome: run.Outcome,
				Packages: run.Packages, Duplicates: run.Duplicates, Events: run.Events, Error: redact.String(run.Error)})
		}
		if len(v.RecentRuns) > 0 {
			v.LastRun = &v.RecentRuns[0]
			v.LastError = v.LastRun.Error
		}
		if a.NextRun != nil {
			if next := a.NextRun(j.Name); !next.IsZero() {
				v.NextRun = &next
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// StatusView is GET /api/status: what an operator looks at first.
type StatusView struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
	Jobs   []JobView         `json:"jobs"`
	// Deliveries counts deliveries by state.
	Deliveries    map[string]int    `json:"deliveries"`
	Subscriptions []SubscriptionRow `json:"subscriptions"`
}

// SubscriptionRow is a subscription's state: active, paused or open (its
// circuit; as this process sees it).
type SubscriptionRow struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Subscription states.
const (
	StateActive = "active"
	StatePaused = "paused"
	StateOpen   = "open"
)

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out := StatusView{Checks: map[string]string{}, Ready: true}
	if a.Readiness != nil {
		out.Checks, out.Ready = a.Readiness(ctx)
	}
	var err error
	if out.Jobs, err = a.jobViews(ctx); err == nil {
		out.Deliveries, err = a.Store.Counts(ctx)
	}
	var paused map[string]string
	if err == nil {
		paused, err = a.Store.Paused(ctx)
	}
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	circuits := a.Publisher.Circuits()
	out.Subscriptions = []SubscriptionRow{}
	for _, s := range a.Subscriptions.Subscriptions() {
		row := SubscriptionRow{Name: s.Name, State: StateActive}
		if reason, ok := paused[s.Name]; ok {
			row.State, row.Reason = StatePaused, reason
		} else if c := circuits[s.Name]; c.State == publish.CircuitOpen {
			row.State, row.Reason = StateOpen, fmt.Sprintf("%d failures in a row; next probe at %s", c.ConsecutiveFailures, c.NextProbeAt.UTC().Format(time.RFC3339))
		}
		out.Subscriptions = append(out.Subscriptions, row)
	}
	WriteJSON(w, http.StatusOK, out)
}

// runJob starts a run in the background (package exports can take
// hours) and answers 202; ?wait=true waits for it.
func (a *API) runJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if a.Runner == nil {
		apiError(w, http.StatusServiceUnavailable, "no daemon runs jobs here")
		return
	}
	if !a.Runner.Has(name) {
		apiError(w, http.StatusNotFound, "no such job")
		return
	}
	leases, err := a.Store.JobLeases(r.Context(), time.Now())
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if l, held := leases[name]; held {
		apiError(w, http.StatusConflict, fmt.Sprintf("job is already running, in %s", l.Owner))
		return
	}
	if r.URL.Query().Get("wait") == "true" {
		res, err := a.Runner.Run(pipeline.WithTrigger(r.Context(), pipeline.TriggerAPI), name, nil)
		if errors.Is(err, pipeline.ErrJobRunning) {
			apiError(w, http.StatusConflict, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, res)
		return
	}
	a.Background(func(ctx context.Context) {
		if _, err := a.Runner.Run(pipeline.WithTrigger(ctx, pipeline.TriggerAPI), name, nil); err != nil && !errors.Is(err, pipeline.ErrJobRunning) {
			a.Log.Error().Err(err).Str("job", name).Msg("job run (started from the API) failed")
		}
	})
	WriteJSON(w, http.StatusAccepted, map[string]string{"status": "started", "job": name})
}

// DeliveryView is a delivery as GET /api/deliveries answers it.
type DeliveryView struct {
	ID            int64      `json:"id"`
	Subscription  string     `json:"subscription"`
	State         string     `json:"state"`
	Attempt       int        `json:"attempt"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Topic         string     `json:"topic"`
	Job           string     `json:"job"`
	Entity        string     `json:"entity,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

func viewDelivery(d store.Delivery) DeliveryView {
	v := DeliveryView{ID: d.ID, Subscription: d.Subscription, State: d.State, Attempt: d.Attempt, LastStatus: d.LastStatus,
		LastError: redact.String(d.LastError), EventID: d.Event.ID, EventType: d.Event.Type, Topic: d.Event.Topic, Job: d.Event.Job,
		Entity: d.Event.Entity, CreatedAt: d.CreatedAt}
	if d.State == store.StatePending {
		v.NextAttemptAt = &d.NextAttemptAt
	}
	if !d.DeliveredAt.IsZero() {
		v.DeliveredAt = &d.DeliveredAt
	}
	return v
}

// FilterFrom reads a delivery filter from query parameters: state,
// subscription, job, entity, since and until (RFC 3339), before (the
// paging cursor: the last id of the previous page) and limit.
func FilterFrom(q url.Values) (store.Filter, error) {
	f := store.Filter{State: q.Get("state"), Subscription: q.Get("subscription"), Job: q.Get("job"), Entity: q.Get("entity")}
	switch f.State {
	case "", store.StatePending, store.StateInFlight, store.StateDelivered, store.StateDead, store.StateSuperseded:
	default:
		return f, fmt.Errorf("%w: state %q: must be pending, in_flight, delivered, dead or superseded", ErrInvalid, f.State)
	}
	for key, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(key); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, fmt.Errorf("%w: %s %q: must be a time like 2026-11-28T09:00:00Z", ErrInvalid, key, v)
			}
		}
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return f, fmt.Errorf("%w: before %q: must be a delivery id", ErrInvalid, b)
		}
		f.Before = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return f, fmt.Errorf("%w: limit %q: must be 1..10000", ErrInvalid, l)
		}
		f.Limit = n
	}
	return f, nil
}

func (a *API) deliveries(w http.ResponseWriter, r *http.Request) {
	f, err := FilterFrom(r.URL.Query())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ds, err := a.Store.Deliveries(r.Context(), f)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDelivery(d))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) countDeliveries(w http.ResponseWriter, r *http.Request) {
	f, err := FilterFrom(r.URL.Query())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := a.Store.CountDeliveries(r.Context(), f)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"count": n})
}

// AttemptView is one attempt as GET /api/deliveries/{id} lists it.
type AttemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	Status     int       `json:"status"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"response,omitempty"`
	Process    string    `json:"process"`
}

// DeliveryDetail is one delivery with its attempts and its event.
type DeliveryDetail struct {
	DeliveryView
	Attempts []AttemptView `json:"attempts"`
	Event    EventView     `json:"event"`
}

// EventView is a stored event.
type EventView struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	Subject       string          `json:"subject"`
	Topic         string          `json:"topic"`
	ControlNumber int64           `json:"control_number"`
	Time          time.Time       `json:"time"`
	Body          json.RawMessage `json:"body"`
}

// deliveryOf finds the delivery the path's {id} names, answering 400, 404
// or 503 itself when it cannot.
func (a *API) deliveryOf(w http.ResponseWriter, r *http.Request) (store.Delivery, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "delivery id must be a number")
		return store.Delivery{}, false
	}
	ds, err := a.Store.Deliveries(r.Context(), store.Filter{ID: id})
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return store.Delivery{}, false
	}
	if len(ds) == 0 {
		apiError(w, http.StatusNotFound, "no such delivery")
		return store.Delivery{}, false
	}
	return ds[0], true
}

func (a *API) delivery(w http.ResponseWriter, r *http.Request) {
	d, ok := a.deliveryOf(w, r)
	if !ok {
		return
	}
	attempts, err := a.Store.Attempts(r.Context(), d.ID)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := DeliveryDetail{DeliveryView: viewDelivery(d), Attempts: []AttemptView{}, Event: EventView{ID: d.Event.ID, Type: d.Event.CEType,
		Source: d.Event.Source, Subject: d.Event.Subject, Topic: d.Event.Topic, ControlNumber: d.Event.ControlNumber, Time: d.Event.CreatedAt,
		Body: json.RawMessage(d.Event.Body)}}
	if a.Body != nil {
		out.Event.Body = a.Body(d.Event)
	}
	if !json.Valid(out.Event.Body) {
		out.Event.Body, _ = json.Marshal(string(out.Event.Body))
	}
	for _, at := range attempts {
		out.Attempts = append(out.Attempts, AttemptView{Attempt: at.Number, At: at.StartedAt, DurationMS: at.Duration.Milliseconds(), Status: at.Status,
			Error: redact.String(at.Error), Response: at.Response, Process: at.Process})
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) replayOne(w http.ResponseWriter, r *http.Request) {
	d, ok := a.deliveryOf(w, r)
	if !ok {
		return
	}
	if d.State == store.StateInFlight || d.State == store.StatePending {
		apiError(w, http.StatusConflict, "delivery is "+d.State+"; only delivered or dead deliveries can be replayed")
		return
	}
	n, err := a.Publisher.Replay(r.Context(), store.Filter{ID: d.ID, State: d.State})
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) {
	f, err := FilterFrom(r.URL.Query())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f.State == "" {
		f.State = store.StateDead
	}
	if f.State == store.StateInFlight || f.State == store.StatePending {
		apiError(w, http.StatusBadRequest, "only dead or delivered deliveries can be replayed")
		return
	}
	n, err := a.Publisher.Replay(r.Context(), f)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (a *API) logLevel(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"level": a.LogLevel()})
}

// setLogLevel changes this process's log level until the next restart or
// reload (other replicas keep theirs).
func (a *API) setLogLevel(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Level string `json:"level"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	if err := a.SetLogLevel(req.Level); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.Log.Warn().Str("token", Principal(r).Name).Str("log_level", req.Level).Msg("log level changed through the API")
	WriteJSON(w, http.StatusOK, map[string]string{"level": a.LogLevel()})
}
