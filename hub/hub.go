package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Config tunes the hub ([hub]). Zero values take the defaults shown.
type Config struct {
	Limits Limits `koanf:"limits"`
	// SSEPing is how often an idle SSE stream gets a ": ping" comment.
	// Default 15s.
	SSEPing time.Duration `koanf:"sse_ping"`
	// WSPing is how often the server pings a WebSocket client; after
	// MissedPings unanswered pings in a row it closes the connection.
	// Defaults 30s and 3.
	WSPing      time.Duration `koanf:"ws_ping"`
	MissedPings int           `koanf:"missed_pings"`
	// MaxLag is how many events a stream reader may fall behind the newest
	// before it is disconnected (it resumes from its last ControlNumber).
	// Default 10000.
	MaxLag int64 `koanf:"max_lag"`
	// WriteTimeout bounds writing one message to a client; a client that
	// does not take it in time is disconnected. Default 10s.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// PollInterval is how often an idle stream looks for events committed
	// by other processes on the store (this process's commits wake it at
	// once). Default 1s.
	PollInterval time.Duration `koanf:"poll_interval"`
	// MaxWait caps a long poll's wait. Default 60s.
	MaxWait time.Duration `koanf:"max_wait"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.SSEPing == 0 {
		c.SSEPing = 15 * time.Second
	}
	if c.WSPing == 0 {
		c.WSPing = 30 * time.Second
	}
	if c.MissedPings == 0 {
		c.MissedPings = 3
	}
	if c.MaxLag == 0 {
		c.MaxLag = 10000
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 60 * time.Second
	}
	return c
}

// Validate reports bad values by key.
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	for key, d := range map[string]time.Duration{"sse_ping": c.SSEPing, "ws_ping": c.WSPing, "write_timeout": c.WriteTimeout,
		"poll_interval": c.PollInterval, "max_wait": c.MaxWait} {
		if d <= 0 {
			ps.Add(key, "must be positive")
		}
	}
	if c.MissedPings < 1 {
		ps.Add("missed_pings", "must be at least 1")
	}
	if c.MaxLag < 1 {
		ps.Add("max_lag", "must be at least 1")
	}
	if c.Limits.MaxRequestBytes < 1024 {
		ps.Add("limits.max_request_bytes", "must be at least 1024")
	}
	if c.Limits.MaxEventBytes < 256 {
		ps.Add("limits.max_event_bytes", "must be at least 256")
	}
	if c.Limits.MaxEvents < 1 {
		ps.Add("limits.max_events", "must be at least 1")
	}
	return ps
}

// Observer is told what the hub does (metrics).
type Observer interface {
	Raised(token string, events int)
	StreamOpened(kind string)
	// StreamClosed: dropped is why the server disconnected the client
	// (behind, slow, pings), "" when the client left.
	StreamClosed(kind, dropped string)
}

type nopObserver struct{}

func (nopObserver) Raised(string, int)          {}
func (nopObserver) StreamOpened(string)         {}
func (nopObserver) StreamClosed(string, string) {}

// Reasons a stream client is dropped.
const (
	DroppedBehind = "behind"
	DroppedSlow   = "slow"
	DroppedPings  = "pings"
)

// Hub serves raising and streams.
type Hub struct {
	Obs    Observer
	cfg    Config
	Raiser *Raiser
	Events EventReader
	// RenderOther renders an event of another contract (DataExport) for a
	// stream, minting its DownloadURL.
	RenderOther func(ctx context.Context, ev store.Event) ([]byte, error)
	Keys        *access.Keyring
	Wake        *Broadcaster
	// Ticker makes the WebSocket ping ticker (tests inject a manual one).
	Ticker func(d time.Duration) (<-chan time.Time, func())
	Log    zerolog.Logger
}

// New returns a hub.
func New(cfg Config, raiser *Raiser, events EventReader, renderOther func(context.Context, store.Event) ([]byte, error), keys *access.Keyring,
	wake *Broadcaster, log zerolog.Logger) *Hub {
	cfg = cfg.WithDefaults()
	raiser.Limits = cfg.Limits
	return &Hub{Obs: nopObserver{}, cfg: cfg, Raiser: raiser, Events: events, RenderOther: renderOther, Keys: keys, Wake: wake,
		Ticker: func(d time.Duration) (<-chan time.Time, func()) { t := time.NewTicker(d); return t.C, t.Stop },
		Log:    log.With().Str("component", "hub").Logger()}
}

// Register mounts the hub's routes on mux.
func (h *Hub) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/events", h.auth(h.raise))
	mux.HandleFunc("POST /ServerEvents", h.auth(h.raise))
	mux.HandleFunc("GET /api/events", h.auth(h.pull))
	mux.HandleFunc("GET /api/stream", h.auth(h.sse))
	mux.HandleFunc("GET /api/stream/ws", h.auth(h.websocket))
	mux.HandleFunc("GET /ServerEvents/Stream", h.auth(h.websocket))
}

// Stream is the SSE stream for requests that carry their principal
// already (access.WithPrincipal): the operations page's live view.
func (h *Hub) Stream() http.Handler { return http.HandlerFunc(h.sse) }

func principal(r *http.Request) *access.Principal { return access.PrincipalOf(r) }

func (h *Hub) auth(next http.HandlerFunc) http.HandlerFunc { return h.Keys.Require(next).ServeHTTP }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail answers err: a refusal with its status, anything else as 503
// (the store), so clients retry.
func (h *Hub) fail(w http.ResponseWriter, err error) {
	var re *Error
	if errors.As(err, &re) {
		writeError(w, re.Status, re.Msg)
		return
	}
	h.Log.Error().Err(err).Msg("hub request failed")
	writeError(w, http.StatusServiceUnavailable, err.Error())
}

func (h *Hub) raise(w http.ResponseWriter, r *http.Request) {
	req, err := ParseRaise(r.Body, h.cfg.Limits)
	if err != nil {
		h.fail(w, err)
		return
	}
	req.TraceParent, req.TraceState = traceContextOf(r.Header.Get("traceparent"), r.Header.Get("tracestate"))
	p := principal(r)
	out, err := h.Raiser.Raise(r.Context(), p, r.Header.Get("Idempotency-Key"), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.Log.Info().Str("token", p.Name).Int("events", len(out)).Msg("events raised")
	h.Obs.Raised(p.Name, len(out))
	writeJSON(w, http.StatusAccepted, map[string]any{"events": out})
}

// pullAnswer is GET /api/events's answer.
type pullAnswer struct {
	Events []json.RawMessage `json:"events"`
	Next   int64             `json:"next"`
	More   bool              `json:"more"`
}

// pull is the long poll: events after ?after= (default 0) on ?topics=, at
// most ?limit= (default 100, at most 1000), waiting up to ?wait= for the
// first.
func (h *Hub) pull(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := principal(r)
	topics, err := parseTopics(q.Get("topics"), p)
	if err != nil {
		h.fail(w, err)
		return
	}
	c := &cursor{topics: topics, p: p}
	if v := q.Get("after"); v != "" {
		if c.after, err = strconv.ParseInt(v, 10, 64); err != nil || c.after < 0 {
			writeError(w, http.StatusBadRequest, "after: want a ControlNumber (an integer ≥ 0)")
			return
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1–1000")
			return
		}
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			writeError(w, http.StatusBadRequest, `wait: want a duration such as "30s"`)
			return
		}
		wait = min(wait, h.cfg.MaxWait)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		woken := h.Wake.Wait()
		msgs, more, err := h.read(r.Context(), c, limit)
		if err != nil && !errors.Is(err, ErrBehind) {
			h.fail(w, err)
			return
		}
		if len(msgs) > 0 || ctx.Err() != nil || errors.Is(err, ErrBehind) {
			ans := pullAnswer{Events: make([]json.RawMessage, len(msgs)), Next: c.after, More: more || errors.Is(err, ErrBehind)}
			for i, m := range msgs {
				ans.Events[i] = m
			}
			writeJSON(w, http.StatusOK, ans)
			return
		}
		h.waitForEvents(ctx, woken)
	}
}

// sse streams events as Server-Sent Events: id = ControlNumber, event =
// type, data = the event. It starts after Last-Event-ID or ?after=, or at
// the newest event when neither is given.
func (h *Hub) sse(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	topics, err := parseTopics(r.URL.Query().Get("topics"), p)
	if err != nil {
		h.fail(w, err)
		return
	}
	c := &cursor{topics: topics, p: p}
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = r.URL.Query().Get("after")
	}
	if from != "" {
		if c.after, err = strconv.ParseInt(from, 10, 64); err != nil || c.after < 0 {
			writeError(w, http.StatusBadRequest, "Last-Event-ID or after: want a ControlNumber (an integer ≥ 0)")
			return
		}
	} else if c.after, err = h.Events.LatestControlNumber(r.Context()); err != nil {
		h.fail(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(s string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := w.Write([]byte(s)); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write("retry: 3000\n\n") != nil {
		return
	}
	log := h.Log.With().Str("token", p.Name).Str("stream", "sse").Logger()
	h.Obs.StreamOpened("sse")
	dropped := ""
	defer func() { h.Obs.StreamClosed("sse", dropped) }()
	ping := time.NewTicker(h.cfg.SSEPing)
	defer ping.Stop()
	for {
		woken := h.Wake.Wait()
		msgs, more, err := h.read(r.Context(), c, pageSize)
		if err != nil {
			if r.Context().Err() == nil {
				if errors.Is(err, ErrBehind) {
					dropped = DroppedBehind
				}
				log.Warn().Err(err).Int64("after", c.after).Msg("SSE stream ended")
				msg, _ := json.Marshal(map[string]string{"error": err.Error()})
				_ = write("event: error\ndata: " + string(msg) + "\n\n")
			}
			return
		}
		for _, m := range msgs {
			var head struct {
				ControlNumber int64  `json:"controlNumber"`
				Type          string `json:"type"`
			}
			_ = json.Unmarshal(m, &head)
			if err := write(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", head.ControlNumber, sseField(head.Type), m)); err != nil {
				if r.Context().Err() == nil {
					dropped = DroppedSlow
				}
				log.Info().Err(err).Msg("SSE client gone or too slow: disconnected")
				return
			}
		}
		if more {
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if write(": ping\n\n") != nil {
				return
			}
		case <-woken:
		case <-time.After(h.cfg.PollInterval):
		}
	}
}

// sseField keeps a value on one line.
func sseField(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return strconv.Quote(s)
		}
	}
	return s
}
