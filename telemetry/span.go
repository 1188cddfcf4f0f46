package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// End ends sp, recording err (redacted: FinOps and receiver errors can
// carry keys in their URLs) as its error and status when there is one.
func End(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(redact.Error(err))
		sp.SetStatus(codes.Error, redact.String(err.Error()))
	}
	sp.End()
}

// Inject is ctx's span context as a W3C traceparent and tracestate, the
// way events store it and webhooks carry it; "" when there is none.
func Inject(ctx context.Context) (parent, state string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent"), carrier.Get("tracestate")
}

// Extract reads a W3C traceparent and tracestate; a missing or malformed
// traceparent gives an invalid span context.
func Extract(parent, state string) trace.SpanContext {
	if parent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent, "tracestate": state})
	return trace.SpanContextFromContext(ctx)
}
