package adapter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
)

// DemoReceiverPath is the built-in sample receiver's path (simulator mode).
const DemoReceiverPath = "/demo/receiver"

// Handler returns the daemon's HTTP routes.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(files.Pattern, files.NewHandler(a.signer, a.Store, a.Files, a.cfg.Files.MaxRanges, a.log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	if a.cfg.Server.AdminToken != "" {
		api := http.NewServeMux()
		api.HandleFunc("GET /api/jobs", a.apiJobs)
		api.HandleFunc("POST /api/jobs/{name}/run", a.apiRunJob)
		api.HandleFunc("GET /api/deliveries", a.apiDeliveries)
		api.HandleFunc("POST /api/deliveries/{id}/replay", a.apiReplayOne)
		api.HandleFunc("POST /api/deliveries/replay", a.apiReplay)
		api.HandleFunc("GET /api/subscriptions", a.apiSubscriptions)
		api.HandleFunc("POST /api/subscriptions/{name}/resume", a.apiResume)
		mux.Handle("/api/", a.requireToken(api))
	}
	if a.cfg.Simulator.Enabled {
		mux.Handle("POST "+DemoReceiverPath, newDemoReceiver(a.Subscriptions.Subscriptions(), a.log))
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (a *App) requireToken(next http.Handler) http.Handler {
	want := []byte("Bearer " + a.cfg.Server.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="exportbridge"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok"}
	status := http.StatusOK
	if err := a.Store.Ping(ctx); err != nil {
		checks["store"], status = err.Error(), http.StatusServiceUnavailable
	}
	if a.opts.Schedule {
		checks["scheduler"] = "ok"
		if a.Sched == nil || !a.Sched.Running() {
			checks["scheduler"], status = "not running", http.StatusServiceUnavailable
		}
	}
	if a.Runner != nil {
		for job, msg := range a.Runner.EnvironmentFaults() {
			checks["job:"+job], status = msg, http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, checks)
}

type jobView struct {
	Name     string     `json:"name"`
	Kind     string     `json:"kind"`
	Schedule string     `json:"schedule"`
	NextRun  *time.Time `json:"next_run,omitempty"`
	// Running and RunningIn come from the job's lease in the store: the same
	// answer from every process that shares it.
	Running   bool   `json:"running"`
	RunningIn string `json:"running_in,omitempty"`
	// LastRun is the newest finished run, from the store's run history.
	LastRun   *runView `json:"last_run,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

type runView struct {
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

func (a *App) apiJobs(w http.ResponseWriter, r *http.Request) {
	leases, err := a.Store.JobLeases(r.Context(), time.Now())
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []jobView{}
	for _, j := range a.cfg.Jobs {
		v := jobView{Name: j.Name, Kind: j.Kind, Schedule: j.Schedule}
		if l, ok := leases[j.Name]; ok {
			v.Running, v.RunningIn = true, l.Owner
		}
		runs, err := a.Store.Runs(r.Context(), j.Name, 5)
		if err != nil {
			apiError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, run := range runs {
			if run.Outcome == store.RunRunning {
				continue
			}
			v.LastRun = &runView{ID: run.ID, Process: run.Owner, Started: run.StartedAt, Finished: run.FinishedAt, Outcome: run.Outcome,
				Packages: run.Packages, Duplicates: run.Duplicates, Events: run.Events, Error: redact.String(run.Error)}
			v.LastError = v.LastRun.Error
			break
		}
		if a.Sched != nil {
			if next := a.Sched.Next(j.Name); !next.IsZero() {
				v.NextRun = &next
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// apiRunJob starts a run in the background (package exports can take
// hours) and answers 202; ?wait=true waits for it.
func (a *App) apiRunJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
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
		res, err := a.Runner.Run(r.Context(), name, nil)
		if errors.Is(err, pipeline.ErrJobRunning) {
			apiError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		if _, err := a.Runner.Run(a.bg, name, nil); err != nil && !errors.Is(err, pipeline.ErrJobRunning) {
			a.log.Error().Err(err).Str("job", name).Msg("job run (started from the API) failed")
		}
	}()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "started", "job": name})
}

type deliveryView struct {
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

func viewDelivery(d store.Delivery) deliveryView {
	v := deliveryView{ID: d.ID, Subscription: d.Subscription, State: d.State, Attempt: d.Attempt, LastStatus: d.LastStatus,
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

func filterFrom(r *http.Request) (store.Filter, error) {
	q := r.URL.Query()
	f := store.Filter{State: q.Get("state"), Subscription: q.Get("subscription")}
	switch f.State {
	case "", store.StatePending, store.StateInFlight, store.StateDelivered, store.StateDead:
	default:
		return f, errors.New("state must be pending, in_flight, delivered or dead")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return f, errors.New("limit must be 1..10000")
		}
		f.Limit = n
	}
	return f, nil
}

func (a *App) apiDeliveries(w http.ResponseWriter, r *http.Request) {
	f, err := filterFrom(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ds, err := a.Store.Deliveries(r.Context(), f)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDelivery(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *App) apiReplayOne(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "delivery id must be a number")
		return
	}
	ds, err := a.Store.Deliveries(r.Context(), store.Filter{ID: id})
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if len(ds) == 0 {
		apiError(w, http.StatusNotFound, "no such delivery")
		return
	}
	if ds[0].State == store.StateInFlight || ds[0].State == store.StatePending {
		apiError(w, http.StatusConflict, "delivery is "+ds[0].State+"; only delivered or dead deliveries can be replayed")
		return
	}
	n, err := a.Pub.Replay(r.Context(), store.Filter{ID: id, State: ds[0].State})
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (a *App) apiReplay(w http.ResponseWriter, r *http.Request) {
	f, err := filterFrom(r)
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
	n, err := a.Pub.Replay(r.Context(), f)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

type subscriptionView struct {
	Name         string   `json:"name"`
	URL          string   `json:"url"`
	Topics       []string `json:"topics"`
	Entities     []string `json:"entities"`
	Signed       bool     `json:"signed"`
	Paused       bool     `json:"paused"`
	PausedReason string   `json:"paused_reason,omitempty"`
	// Circuit is this process's circuit breaker for the target.
	Circuit publish.BreakerState `json:"circuit"`
}

func (a *App) apiSubscriptions(w http.ResponseWriter, r *http.Request) {
	paused, err := a.Store.Paused(r.Context())
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []subscriptionView{}
	circuits := a.Pub.Circuits()
	for _, s := range a.Subscriptions.Subscriptions() {
		reason, p := paused[s.Name]
		out = append(out, subscriptionView{Name: s.Name, URL: redact.URL(s.URL), Topics: s.Topics, Entities: append([]string{}, s.Entities...),
			Signed: len(s.Secret) > 0, Paused: p, PausedReason: reason, Circuit: circuits[s.Name]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *App) apiResume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	found := false
	for _, s := range a.Subscriptions.Subscriptions() {
		found = found || s.Name == name
	}
	if !found {
		apiError(w, http.StatusNotFound, "no such subscription")
		return
	}
	if err := a.Pub.Resume(r.Context(), name); err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "resumed", "subscription": name})
}

// demoReceiver is the demo's sample subscriber: it verifies each request's
// signature, logs the event, downloads the file and checks its SHA-256, as
// a downstream flow would.
type demoReceiver struct {
	keys   [][]byte
	client *http.Client
	log    zerolog.Logger
}

func newDemoReceiver(subs []*publish.Subscription, log zerolog.Logger) *demoReceiver {
	d := &demoReceiver{client: &http.Client{Timeout: 30 * time.Second}, log: log.With().Str("component", "demo_receiver").Logger()}
	for _, s := range subs {
		if strings.HasSuffix(strings.SplitN(s.URL, "?", 2)[0], DemoReceiverPath) {
			d.keys = append(d.keys, s.Keys()...)
		}
	}
	return d
}

func (d *demoReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if len(d.keys) > 0 {
		if err := publish.Verify(d.keys, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			d.log.Warn().Err(err).Msg("rejected a request with a bad signature")
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	var ev struct {
		BusinessEventID, EntityName, DownloadURL, ContentSHA256, FailureReason, FailureMessage, Job string
		NoOfRecords                                                                                 int64
		ControlNumber                                                                               int64
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	logEv := d.log.Info().Str("event_id", r.Header.Get("webhook-id")).Str("type", ev.BusinessEventID).Str("job", ev.Job).
		Int64("control_number", ev.ControlNumber).Str("attempt", r.Header.Get("exportbridge-attempt"))
	if ev.BusinessEventID == dataexport.TypeFailed {
		logEv.Str("reason", ev.FailureReason).Str("message", ev.FailureMessage).Msg("demo receiver: export failed")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	size, sum, err := d.fetch(r.Context(), ev.DownloadURL)
	if err != nil {
		logEv.Err(err).Msg("demo receiver: event received, download failed")
		http.Error(w, "download failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	logEv.Str("entity", ev.EntityName).Int64("records", ev.NoOfRecords).Int64("downloaded_bytes", size).
		Bool("sha256_ok", sum == ev.ContentSHA256).Msg("demo receiver: signature verified, file downloaded")
	w.WriteHeader(http.StatusNoContent)
}

func (d *demoReceiver) fetch(ctx context.Context, url string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, "", redact.Error(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", errors.New(resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return n, hex.EncodeToString(h.Sum(nil)), err
}
