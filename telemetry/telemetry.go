// Package telemetry sends traces of the product's work (a job run, its
// FinOps calls, conversion, commit, and later each delivery attempt) to an
// OpenTelemetry collector over OTLP/HTTP. Off by default: then the tracer
// provider is a no-op, and instrumented code pays a nil check and an
// interface call per span, nothing more.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// Config is [telemetry].
type Config struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, such as
	// "http://otel-collector:4318" (traces go to /v1/traces). Empty: off.
	OTLPEndpoint string `koanf:"otlp_endpoint"`
	// ServiceName is the service.name of every span. Default "exportbridge".
	ServiceName string `koanf:"service_name"`
	// SampleRatio is the share of traces kept, 0 to 1. Default 1.
	SampleRatio *float64 `koanf:"sample_ratio"`
	// Headers are sent with every export (an API key, say).
	Headers map[string]string `koanf:"headers" secret:"true"`
}

// WithDefaults fills what was left unset.
func (c Config) WithDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = "exportbridge"
	}
	if c.SampleRatio == nil {
		one := 1.0
		c.SampleRatio = &one
	}
	return c
}

// Validate names the keys (relative to [telemetry]) that are wrong.
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.Add("otlp_endpoint", "must be an http(s) URL such as http://otel-collector:4318, got %q", c.OTLPEndpoint)
		}
	}
	if r := c.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		ps.Add("sample_ratio", "must be between 0 and 1, got %g", *r)
	}
	return ps
}

// Enabled reports whether traces are exported.
func (c Config) Enabled() bool { return c.OTLPEndpoint != "" }

// Provider is the tracer provider the product's components get, and its
// shutdown (which sends what is buffered).
type Provider struct {
	trace.TracerProvider
	shutdown func(context.Context) error
}

// Shutdown flushes and stops the exporter; a no-op provider has nothing to
// do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// Option adjusts Start.
type Option func(*options)

type options struct {
	exporter sdktrace.SpanExporter
}

// WithExporter exports to e instead of OTLP (tests: the SDK's in-memory
// exporter), synchronously, whatever the endpoint.
func WithExporter(e sdktrace.SpanExporter) Option { return func(o *options) { o.exporter = e } }

// Start returns the provider cfg asks for: a no-op one when telemetry is
// off, else the SDK's, batching spans to the collector.
func Start(ctx context.Context, cfg Config, version string, opts ...Option) (*Provider, error) {
	cfg = cfg.WithDefaults()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !cfg.Enabled() && o.exporter == nil {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName), attribute.String("service.version", version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	spo := sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(o.exporter))
	if o.exporter == nil {
		u, _ := url.Parse(cfg.OTLPEndpoint)
		eo := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(strings.TrimSuffix(u.Path, "/") + "/v1/traces")}
		if u.Scheme == "http" {
			eo = append(eo, otlptracehttp.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			eo = append(eo, otlptracehttp.WithHeaders(cfg.Headers))
		}
		exp, err := otlptracehttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		spo = sdktrace.WithBatcher(exp)
	}
	tp := sdktrace.NewTracerProvider(spo, sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SampleRatio))))
	return &Provider{TracerProvider: tp, shutdown: func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("telemetry: sending the last spans: %w", err)
		}
		return nil
	}}, nil
}

// WithTrace returns log with the span's trace_id and span_id, so the lines
// of a traced operation lead to its trace; log as it was when the span is
// not recorded (telemetry off, or not sampled).
func WithTrace(log zerolog.Logger, sp trace.Span) zerolog.Logger {
	sc := sp.SpanContext()
	if !sp.IsRecording() || !sc.IsValid() {
		return log
	}
	return log.With().Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String()).Logger()
}
