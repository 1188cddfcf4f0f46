package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Limits bound what one raise may carry.
type Limits struct {
	// MaxRequestBytes bounds a request body. Default 1 MiB.
	MaxRequestBytes int64 `koanf:"max_request_bytes"`
	// MaxEventBytes bounds one event as sent (its JSON object). Default
	// 256 KiB.
	MaxEventBytes int `koanf:"max_event_bytes"`
	// MaxEvents bounds the events of one request. Default 100.
	MaxEvents int `koanf:"max_events"`
}

// WithDefaults fills zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = 1 << 20
	}
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = 256 << 10
	}
	if l.MaxEvents == 0 {
		l.MaxEvents = 100
	}
	return l
}

// RaiseRequest is the body of POST /api/events (and a WebSocket
// {"events":[…]} message).
type RaiseRequest struct {
	Events []RaiseEvent `json:"events"`
	// TraceParent and TraceState are the client's W3C trace context (HTTP
	// headers, or a WebSocket message's fields): the events' deliveries
	// and stream messages continue its trace.
	TraceParent string `json:"-"`
	TraceState  string `json:"-"`
}

// RaiseEvent is one event to raise.
type RaiseEvent struct {
	Topic              string          `json:"topic"`
	Data               json.RawMessage `json:"data"`
	AdditionalMetadata json.RawMessage `json:"additionalMetadata"`
	Type               string          `json:"type"`
}

// Raised is one stored event as the answer lists it.
type Raised struct {
	ID            string `json:"id"`
	Topic         string `json:"topic"`
	ControlNumber int64  `json:"controlNumber"`
}

// Error is a refused raise: the HTTP status and a message naming the
// limit, the position or the missing scope.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// ParseRaise reads a raise request body within the limits.
func ParseRaise(body io.Reader, l Limits) (RaiseRequest, error) {
	data, err := io.ReadAll(io.LimitReader(body, l.MaxRequestBytes+1))
	if err != nil {
		return RaiseRequest{}, refuse(http.StatusBadRequest, "reading the body: %v", err)
	}
	if int64(len(data)) > l.MaxRequestBytes {
		return RaiseRequest{}, refuse(http.StatusRequestEntityTooLarge, "request body over %d bytes (max_request_bytes)", l.MaxRequestBytes)
	}
	return DecodeRaise(data, l)
}

// DecodeRaise decodes a raise request held in data, within the limits.
func DecodeRaise(data []byte, l Limits) (RaiseRequest, error) {
	var raw struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return RaiseRequest{}, refuse(http.StatusBadRequest, "malformed JSON: %s", describeJSONError(data, err))
	}
	if len(raw.Events) == 0 {
		return RaiseRequest{}, refuse(http.StatusBadRequest, `"events" must hold at least one event`)
	}
	if len(raw.Events) > l.MaxEvents {
		return RaiseRequest{}, refuse(http.StatusBadRequest, "%d events in one request; at most %d (max_events)", len(raw.Events), l.MaxEvents)
	}
	req := RaiseRequest{Events: make([]RaiseEvent, len(raw.Events))}
	for i, e := range raw.Events {
		if len(e) > l.MaxEventBytes {
			return RaiseRequest{}, refuse(http.StatusRequestEntityTooLarge, "events[%d] is %d bytes; at most %d (max_event_bytes)", i, len(e), l.MaxEventBytes)
		}
		dec := json.NewDecoder(bytes.NewReader(e))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req.Events[i]); err != nil {
			return RaiseRequest{}, refuse(http.StatusBadRequest, "events[%d]: %v", i, err)
		}
		ev := req.Events[i]
		if err := access.ValidTopic(ev.Topic); err != nil {
			return RaiseRequest{}, refuse(http.StatusBadRequest, "events[%d]: %v", i, err)
		}
		if len(ev.AdditionalMetadata) > 0 && ev.AdditionalMetadata[0] != '{' && string(ev.AdditionalMetadata) != "null" {
			return RaiseRequest{}, refuse(http.StatusBadRequest, "events[%d]: additionalMetadata must be an object", i)
		}
		if len(ev.Type) > 256 {
			return RaiseRequest{}, refuse(http.StatusBadRequest, "events[%d]: type is %d bytes; at most 256", i, len(ev.Type))
		}
	}
	return req, nil
}

// describeJSONError names where decoding failed: byte offset, line and
// column.
func describeJSONError(data []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 {
		return err.Error()
	}
	line, col := 1, 1
	for _, c := range data[:min(int(off), len(data))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%v (byte %d, line %d, column %d)", err, off, line, col)
}

// Appender stores raised events (the store).
type Appender interface {
	AppendEvents(ctx context.Context, events []store.NewEvent, at time.Time) ([]store.Event, error)
	AppendEventsOnce(ctx context.Context, key store.IdempotencyKey, events []store.NewEvent, at time.Time) ([]store.Event, bool, error)
}

// Router names the webhook subscriptions that want an event.
type Router func(ev store.Event) []string

// Raiser stores raised events with their deliveries.
type Raiser struct {
	Store Appender
	Route Router
	// Committed is told after events are stored (wakes the publisher and
	// the streams).
	Committed func()
	Limits    Limits
	// IdempotencyWindow is how long an Idempotency-Key is remembered.
	// Default 24h.
	IdempotencyWindow time.Duration
	Now               func() time.Time
}

// Raise authorizes and stores req for p, under idempotencyKey if not
// empty, once durable returning the stored events.
func (r *Raiser) Raise(ctx context.Context, p *access.Principal, idempotencyKey string, req RaiseRequest) ([]Raised, error) {
	for i, e := range req.Events {
		if e.Topic == ReservedTopic || strings.HasPrefix(e.Topic, ReservedTopic+"/") {
			return nil, refuse(http.StatusForbidden, "events[%d]: topic %q is the product's own (dataexport events are raised by exports)", i, e.Topic)
		}
		if !p.CanPublish(e.Topic) {
			return nil, refuse(http.StatusForbidden, "events[%d]: token %q lacks scope %s", i, p.Name, access.MissingScope(access.ScopePublish, e.Topic))
		}
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	at := now()
	events := make([]store.NewEvent, len(req.Events))
	for i, e := range req.Events {
		typ := e.Type
		if typ == "" {
			typ = DefaultType
		}
		id := uuid.NewString()
		ev := store.Event{ID: id, Type: typ, CEType: typ, Source: Source, Subject: e.Topic, Topic: e.Topic,
			Body: newStored(id, e.Topic, typ, at, e.Data, e.AdditionalMetadata), CreatedAt: at, TraceParent: req.TraceParent, TraceState: req.TraceState}
		var subs []string
		if r.Route != nil {
			subs = r.Route(ev)
		}
		events[i] = store.NewEvent{Event: ev, Subscriptions: subs}
	}
	var stored []store.Event
	var err error
	if idempotencyKey != "" {
		if len(idempotencyKey) > 255 {
			return nil, refuse(http.StatusBadRequest, "Idempotency-Key is %d bytes; at most 255", len(idempotencyKey))
		}
		window := r.IdempotencyWindow
		if window == 0 {
			window = 24 * time.Hour
		}
		stored, _, err = r.Store.AppendEventsOnce(ctx, store.IdempotencyKey{Principal: p.Name, Key: idempotencyKey, Since: at.Add(-window)}, events, at)
	} else {
		stored, err = r.Store.AppendEvents(ctx, events, at)
	}
	if err != nil {
		return nil, fmt.Errorf("hub: storing raised events: %w", err)
	}
	if r.Committed != nil {
		r.Committed()
	}
	out := make([]Raised, len(stored))
	for i, e := range stored {
		out[i] = Raised{ID: e.ID, Topic: e.Topic, ControlNumber: e.ControlNumber}
	}
	return out, nil
}
