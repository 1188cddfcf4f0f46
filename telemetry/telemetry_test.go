package telemetry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	half, two := 0.5, 2.0
	tests := []struct {
		cfg  Config
		keys []string
	}{
		{Config{}, nil},
		{Config{OTLPEndpoint: "http://otel-collector:4318", SampleRatio: &half}, nil},
		{Config{OTLPEndpoint: "otel-collector:4318"}, []string{"otlp_endpoint"}},
		{Config{OTLPEndpoint: "ftp://x"}, []string{"otlp_endpoint"}},
		{Config{SampleRatio: &two}, []string{"sample_ratio"}},
	}
	for _, tc := range tests {
		ps := tc.cfg.WithDefaults().Validate()
		var keys []string
		for _, p := range ps {
			keys = append(keys, p.Key)
		}
		require.Equal(t, tc.keys, keys, "%+v", tc.cfg)
	}
	d := Config{}.WithDefaults()
	require.Equal(t, "exportbridge", d.ServiceName)
	require.Equal(t, 1.0, *d.SampleRatio)
	require.False(t, d.Enabled())
}

// TestOffCostsNothing: with no endpoint the provider is a no-op: spans
// record nothing and shutting down does nothing. With an exporter, spans
// are recorded with the service's name.
func TestOffCostsNothing(t *testing.T) {
	t.Parallel()
	off, err := Start(context.Background(), Config{}, "v1")
	require.NoError(t, err)
	_, sp := off.Tracer("t").Start(context.Background(), "x")
	require.False(t, sp.IsRecording())
	sp.End()
	require.NoError(t, off.Shutdown(context.Background()))

	exp := tracetest.NewInMemoryExporter()
	on, err := Start(context.Background(), Config{ServiceName: "eb-test"}, "v1", WithExporter(exp))
	require.NoError(t, err)
	_, sp = on.Tracer("t").Start(context.Background(), "x")
	require.True(t, sp.IsRecording())
	sp.End()
	spans := exp.GetSpans() // before Shutdown, which empties the in-memory exporter
	require.NoError(t, on.Shutdown(context.Background()))
	require.Len(t, spans, 1)
	var service string
	for _, kv := range spans[0].Resource.Attributes() {
		if kv.Key == "service.name" {
			service = kv.Value.AsString()
		}
	}
	require.Equal(t, "eb-test", service)
}
