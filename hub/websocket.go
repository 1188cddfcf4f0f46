package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/exportbridge/exportbridge/access"
)

// clientMessage is what a WebSocket client sends: one of subscribe,
// unsubscribe, events (raise) or resume.
type clientMessage struct {
	Subscribe   []string        `json:"subscribe"`
	Unsubscribe []string        `json:"unsubscribe"`
	Events      json.RawMessage `json:"events"`
	Resume      *int64          `json:"resume"`
}

// wsConn is one WebSocket client: a reader of its messages, a writer of
// events on its topics, and a pinger.
type wsConn struct {
	h    *Hub
	c    *websocket.Conn
	p    *access.Principal
	wake chan struct{} // topics or position changed

	mu      sync.Mutex
	cur     cursor
	since   bool // cur.after was set (resume) since the writer last read it
	resumed bool // the client chose its position: keep it while unsubscribed
}

func (h *Hub) websocket(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"exportbridge"}, OriginPatterns: []string{"*"}})
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(h.cfg.Limits.MaxRequestBytes)
	after, err := h.Events.LatestControlNumber(r.Context())
	if err != nil {
		c.Close(websocket.StatusTryAgainLater, "store unavailable")
		return
	}
	conn := &wsConn{h: h, c: c, p: p, wake: make(chan struct{}, 1), cur: cursor{after: after, p: p}}
	h.Obs.StreamOpened("websocket")
	dropped := ""
	defer func() { h.Obs.StreamClosed("websocket", dropped) }()
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	go func() { cancel(conn.readLoop(ctx)) }()
	go func() { cancel(conn.pingLoop(ctx)) }()
	err = conn.writeLoop(ctx)
	// The writer's own reasons first: a write that timed out also closes
	// the connection, which ends the reader with an error of its own.
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(err, errSlow) && !errors.Is(err, ErrBehind) {
		err = cause
	}
	status, reason := websocket.StatusNormalClosure, ""
	switch {
	case errors.Is(err, ErrBehind):
		dropped = DroppedBehind
		status, reason = websocket.StatusPolicyViolation, "fell too far behind; resume from the last controlNumber received"
	case errors.Is(err, errSlow):
		dropped = DroppedSlow
		h.Log.Info().Str("token", p.Name).Msg("WebSocket client too slow to take a message: disconnected")
		return
	case errors.Is(err, errPingsUnanswered):
		dropped = DroppedPings
		// The peer does not answer: no close handshake to wait for.
		h.Log.Info().Str("token", p.Name).Int("missed_pings", h.cfg.MissedPings).Msg("WebSocket client stopped answering pings: disconnected")
		return
	case websocket.CloseStatus(err) != -1 || errors.Is(err, context.Canceled):
		return
	}
	h.Log.Info().Err(err).Str("token", p.Name).Msg("WebSocket stream closed")
	c.Close(status, reason)
}

var errPingsUnanswered = errors.New("pings unanswered")

// pingLoop pings every WSPing and ends the connection once MissedPings in
// a row are unanswered.
func (w *wsConn) pingLoop(ctx context.Context) error {
	tick, stop := w.h.Ticker(w.h.cfg.WSPing)
	defer stop()
	var sent, answered atomic.Int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
		if sent.Load()-answered.Load() >= int64(w.h.cfg.MissedPings) {
			return errPingsUnanswered
		}
		sent.Add(1)
		go func() {
			if w.c.Ping(ctx) == nil {
				answered.Add(1)
			}
		}()
	}
}

func (w *wsConn) send(ctx context.Context, v any) error {
	b, _ := json.Marshal(v)
	return w.sendRaw(ctx, b)
}

func (w *wsConn) sendRaw(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, w.h.cfg.WriteTimeout)
	defer cancel()
	err := w.c.Write(wctx, websocket.MessageText, b)
	// wctx's own deadline, not the connection's end: the timed-out write
	// closes the connection, which may end the reader (and cancel ctx)
	// before this line runs.
	if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", errSlow, err)
	}
	return err
}

// errSlow: the client did not take a message within write_timeout.
var errSlow = errors.New("hub: the client did not take a message in time")

func (w *wsConn) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// readLoop handles the client's messages until it goes away.
func (w *wsConn) readLoop(ctx context.Context) error {
	for {
		_, data, err := w.c.Read(ctx)
		if err != nil {
			return err
		}
		var m clientMessage
		if err := json.Unmarshal(data, &m); err != nil {
			if err := w.send(ctx, map[string]string{"error": "malformed JSON: " + describeJSONError(data, err)}); err != nil {
				return err
			}
			continue
		}
		var reply any
		switch {
		case m.Subscribe != nil:
			reply = w.subscribe(m.Subscribe)
		case m.Unsubscribe != nil:
			w.mu.Lock()
			w.cur.topics = slices.DeleteFunc(w.cur.topics, func(t string) bool { return slices.Contains(m.Unsubscribe, t) })
			w.mu.Unlock()
			reply = map[string]any{"ack": "unsubscribe", "topics": m.Unsubscribe}
		case m.Events != nil:
			reply = w.raise(ctx, data)
		case m.Resume != nil:
			w.mu.Lock()
			w.cur.after, w.since, w.resumed = max(*m.Resume, 0), true, true
			w.mu.Unlock()
			reply = map[string]any{"ack": "resume", "after": max(*m.Resume, 0)}
		default:
			reply = map[string]string{"error": `unknown message: send "subscribe", "unsubscribe", "events" or "resume"`}
		}
		if err := w.send(ctx, reply); err != nil {
			return err
		}
		w.poke()
	}
}

func (w *wsConn) subscribe(topics []string) any {
	for _, t := range topics {
		if err := access.ValidPattern(t); err != nil {
			return map[string]string{"error": "subscribe: " + err.Error()}
		}
		if !w.p.CanSubscribe(t) {
			return map[string]string{"error": "subscribe: token " + w.p.Name + " lacks scope " + access.MissingScope(access.ScopeSubscribe, t)}
		}
	}
	w.mu.Lock()
	for _, t := range topics {
		if !slices.Contains(w.cur.topics, t) {
			w.cur.topics = append(w.cur.topics, t)
		}
	}
	w.mu.Unlock()
	return map[string]any{"ack": "subscribe", "topics": topics}
}

func (w *wsConn) raise(ctx context.Context, data []byte) any {
	req, err := DecodeRaise(data, w.h.cfg.Limits)
	if err == nil {
		// The trace context rides in the message, as headers cannot.
		var tc struct {
			TraceParent string `json:"traceparent"`
			TraceState  string `json:"tracestate"`
		}
		_ = json.Unmarshal(data, &tc) // DecodeRaise read it as JSON already
		req.TraceParent, req.TraceState = traceContextOf(tc.TraceParent, tc.TraceState)
		var out []Raised
		if out, err = w.h.Raiser.Raise(ctx, w.p, "", req); err == nil {
			w.h.Log.Info().Str("token", w.p.Name).Int("events", len(out)).Str("via", "websocket").Msg("events raised")
			w.h.Obs.Raised(w.p.Name, len(out))
			return map[string]any{"ack": "events", "events": out}
		}
	}
	var re *Error
	if errors.As(err, &re) {
		return map[string]string{"error": re.Msg}
	}
	return map[string]string{"error": "storing the events failed, send them again: " + err.Error()}
}

// writeLoop sends the events on the client's topics as they commit.
func (w *wsConn) writeLoop(ctx context.Context) error {
	for {
		woken := w.h.Wake.Wait()
		w.mu.Lock()
		c := cursor{after: w.cur.after, topics: slices.Clone(w.cur.topics), p: w.p}
		w.since = false
		resumed := w.resumed
		w.mu.Unlock()
		var msgs [][]byte
		more := false
		if len(c.topics) > 0 {
			var err error
			if msgs, more, err = w.h.read(ctx, &c, pageSize); err != nil {
				return err
			}
		} else if !resumed {
			// Nothing subscribed: a later subscription starts from now.
			if latest, err := w.h.Events.LatestControlNumber(ctx); err == nil {
				c.after = max(c.after, latest)
			}
		}
		w.mu.Lock()
		if !w.since { // a resume while reading wins
			w.cur.after = c.after
		}
		w.mu.Unlock()
		for _, m := range msgs {
			if err := w.sendRaw(ctx, append(append([]byte(`{"event":`), m...), '}')); err != nil {
				return err
			}
		}
		if more {
			continue
		}
		t := time.NewTimer(w.h.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-woken:
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}
