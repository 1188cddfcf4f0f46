package pipeline

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// What started a run, for its span.
const (
	TriggerSchedule  = "schedule"
	TriggerExportNow = "export-now"
	TriggerAPI       = "api"
)

type triggerKey struct{}

// WithTrigger says what starts the run Run is given ctx for.
func WithTrigger(ctx context.Context, trigger string) context.Context {
	return context.WithValue(ctx, triggerKey{}, trigger)
}

func triggerOf(ctx context.Context) string {
	if t, ok := ctx.Value(triggerKey{}).(string); ok {
		return t
	}
	return "other"
}

// WithTracerProvider traces each run: a span "job.run" with children for
// the FinOps calls (their client's own), the conversion, the commit and the
// comparisons (default: none).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(r *Runner) { r.tracer = tp.Tracer("github.com/exportbridge/exportbridge/pipeline") }
}

// endSpan records err (redacted) on sp and ends it.
func endSpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(redact.Error(err))
		sp.SetStatus(codes.Error, redact.String(err.Error()))
	}
	sp.End()
}

var attrJob = attribute.Key("exportbridge.job")

// traceContext is ctx's span as a W3C traceparent and tracestate, ""
// when not traced.
func traceContext(ctx context.Context) (parent, state string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent"), carrier.Get("tracestate")
}
