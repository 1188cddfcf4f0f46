package hub

import (
	"bytes"
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/trace"

	"github.com/exportbridge/exportbridge/telemetry"
)

// traceContextOf is a client's W3C traceparent and tracestate, checked
// and written canonically; "" when absent or not valid.
func traceContextOf(parent, state string) (string, string) {
	sc := telemetry.Extract(parent, state)
	if !sc.IsValid() {
		return "", ""
	}
	return telemetry.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc))
}

// withTraceParent adds the CloudEvents distributed-tracing attribute
// "traceparent" to a stream message (structured mode) when the event has
// one. Webhooks carry it as a header instead: their body is the contract's.
func withTraceParent(msg []byte, parent, state string) []byte {
	if parent == "" || len(msg) < 2 || msg[len(msg)-1] != '}' {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(parent)+len(state)+40)
	out = append(out, bytes.TrimSuffix(msg, []byte("}"))...)
	out = append(out, `,"traceparent":`...)
	out = appendJSONString(out, parent)
	if state != "" {
		out = append(out, `,"tracestate":`...)
		out = appendJSONString(out, state)
	}
	return append(out, '}')
}

func appendJSONString(out []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(out, b...)
}
