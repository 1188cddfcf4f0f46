package pipeline

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
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

var attrJob = attribute.Key("exportbridge.job")
