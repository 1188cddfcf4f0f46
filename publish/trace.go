package publish

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/telemetry"
)

// startAttempt starts an attempt's span: a child of the event's stored
// trace context, and linked to it, so the attempt joins the trace of the
// run that made the event however much later, in whichever process.
//
// Untraced (the no-op tracer), it costs one call and builds nothing.
func (p *Publisher) startAttempt(ctx context.Context, s *Subscription, d store.Delivery) (context.Context, trace.Span) {
	if d.Event.TraceParent == "" {
		ctx, sp := p.tracer.Start(ctx, "delivery.attempt")
		setAttemptAttributes(sp, s, d)
		return ctx, sp
	}
	parent := telemetry.Extract(d.Event.TraceParent, d.Event.TraceState)
	if !parent.IsValid() {
		return p.tracer.Start(ctx, "delivery.attempt")
	}
	ctx, sp := p.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "delivery.attempt",
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(trace.Link{SpanContext: parent}))
	setAttemptAttributes(sp, s, d)
	return ctx, sp
}

func setAttemptAttributes(sp trace.Span, s *Subscription, d store.Delivery) {
	if sp.IsRecording() {
		sp.SetAttributes(attribute.String("exportbridge.subscription", s.Name), attribute.String("exportbridge.event_id", d.Event.ID),
			attribute.Int("exportbridge.attempt", d.Attempt), attribute.Int64("exportbridge.delivery_id", d.ID))
	}
}

// endAttempt records an attempt's outcome on its span.
func endAttempt(sp trace.Span, status int, took time.Duration, outcome string, err error) {
	if !sp.IsRecording() {
		sp.End()
		return
	}
	sp.SetAttributes(attribute.Int("http.response.status_code", status), attribute.Int64("exportbridge.duration_ms", took.Milliseconds()),
		attribute.String("exportbridge.outcome", outcome))
	telemetry.End(sp, err)
}

// traceContextOf is what a webhook carries: the attempt's span when it is
// traced here, else the event's stored context as it came (a raised
// event's client's, say), else nothing.
func traceContextOf(ctx context.Context, ev store.Event) (parent, state string) {
	if trace.SpanFromContext(ctx).IsRecording() {
		return telemetry.Inject(ctx)
	}
	return ev.TraceParent, ev.TraceState
}
