package hub

import (
	"bytes"
	"context"
	"strconv"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceParentOf is a request's W3C traceparent header, checked and
// written canonically; "" when absent or not a valid one.
func traceParentOf(header string) string {
	if header == "" {
		return ""
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": header})
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	out := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, out)
	return out.Get("traceparent")
}

// withTraceParent adds the CloudEvents distributed-tracing attribute
// "traceparent" to a stream message (structured mode) when the event has
// one. Webhooks carry it as a header instead: their body is the contract's.
func withTraceParent(msg []byte, tp string) []byte {
	if tp == "" || len(msg) < 2 || msg[len(msg)-1] != '}' {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(tp)+20)
	out = append(out, bytes.TrimSuffix(msg, []byte("}"))...)
	out = append(out, `,"traceparent":`...)
	out = strconv.AppendQuote(out, tp)
	return append(out, '}')
}
