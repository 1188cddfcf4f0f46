// Package hub is the event hub: events raised over HTTP or a WebSocket by
// other systems (agents, apps, Volt MX clients) are stored and routed to
// webhook subscriptions like DataExport events, and every committed event,
// raised or exported, can be read as a live stream (SSE, WebSocket, long
// poll) by ControlNumber, under the token scopes of package access.
package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Attributes of raised events.
const (
	// Source is the CloudEvents source of every raised event.
	Source = "/exportbridge/events"
	// DefaultType is a raised event's type when the client gives none.
	DefaultType = "com.exportbridge.event"
	// ReservedTopic and its children are the product's own (DataExport).
	ReservedTopic = "dataexport"
)

// Event is an event as webhooks and streams carry it. For a raised event
// it is also the webhook body; other events (DataExport) travel in a
// stream as Data of one of these.
type Event struct {
	ID                 string          `json:"id"`
	Topic              string          `json:"topic"`
	Type               string          `json:"type"`
	Time               string          `json:"time"`
	Source             string          `json:"source"`
	ControlNumber      int64           `json:"controlNumber"`
	Data               json.RawMessage `json:"data"`
	AdditionalMetadata json.RawMessage `json:"additionalMetadata"`
}

// timeFormat is RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// newStored builds the stored body of a raised event: the Event with
// ControlNumber 0, which Render fills in per attempt.
func newStored(id, topic, typ string, at time.Time, data, meta json.RawMessage) []byte {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	b, _ := json.Marshal(Event{ID: id, Topic: topic, Type: typ, Time: at.UTC().Format(timeFormat), Source: Source, Data: data, AdditionalMetadata: meta})
	return b
}

// zeroControlNumber is the stored form of the field Render fills in. A
// quote inside a JSON string is escaped, so the first match is the key
// (id, topic, type, time and source, before it, are ours or validated).
var zeroControlNumber = []byte(`"controlNumber":0,`)

// Render returns a raised event's body with its ControlNumber; a body it
// does not recognise passes through. It is the Renderer of raised events.
func Render(ev store.Event) []byte {
	i := bytes.Index(ev.Body, zeroControlNumber)
	if i < 0 {
		return ev.Body
	}
	out := make([]byte, 0, len(ev.Body)+20)
	out = append(out, ev.Body[:i]...)
	out = append(out, `"controlNumber":`...)
	out = strconv.AppendInt(out, ev.ControlNumber, 10)
	out = append(out, ',')
	return append(out, ev.Body[i+len(zeroControlNumber):]...)
}

// IsRaised reports whether ev was raised through the hub.
func IsRaised(ev store.Event) bool { return ev.Source == Source }

// Envelope wraps an event of another contract for a stream: its rendered
// body (for a DataExport event, with a DownloadURL minted for this read)
// is the Data.
func Envelope(ev store.Event, body []byte) []byte {
	b, _ := json.Marshal(Event{ID: ev.ID, Topic: ev.Topic, Type: ev.Type, Time: ev.CreatedAt.UTC().Format(timeFormat), Source: ev.Source,
		ControlNumber: ev.ControlNumber, Data: body, AdditionalMetadata: json.RawMessage("{}")})
	return b
}
