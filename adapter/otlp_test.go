package adapter

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/pipeline"
)

// collector is a loopback OTLP/HTTP receiver: it decodes each export's
// protobuf and keeps the spans' names and trace ids.
type collector struct {
	mu    sync.Mutex
	spans map[string][]string // name → trace ids (hex)
}

func newCollector(t *testing.T) (*collector, string) {
	t.Helper()
	c := &collector{spans: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "not OTLP/HTTP protobuf traces", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					c.spans[sp.Name] = append(c.spans[sp.Name], hex.EncodeToString(sp.TraceId))
				}
			}
		}
		c.mu.Unlock()
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// TestOneTraceFromTheDequeueToTheReceiver: with the real OTLP/HTTP
// exporter sending to a loopback collector, the dequeue's span and the
// webhook receiver's traceparent share one trace id.
func TestOneTraceFromTheDequeueToTheReceiver(t *testing.T) {
	t.Parallel()
	col, url := newCollector(t)
	e := newTestEnv(t, finopssim.Config{}, func(c *Config) { c.Telemetry.OTLPEndpoint = url })
	a, err := StartApp(context.Background(), e.cfg, zerolog.Nop(), AppOptions{})
	require.NoError(t, err)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, a.Stop(ctx)) // the last thing it stops sends the buffered spans
		}
	}
	t.Cleanup(stop)
	e.sim.EnqueueSample(testActivity)
	_, err = a.Runner.Run(pipeline.WithTrigger(context.Background(), pipeline.TriggerAPI), "customer-groups", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(e.rcv.deliveries()) == 3 }, 10*time.Second, 10*time.Millisecond)
	stop()

	col.mu.Lock()
	defer col.mu.Unlock()
	require.NotEmpty(t, col.spans["finops.dequeue"], "the collector decoded the dequeue's span: %v", col.spans)
	trace := col.spans["finops.dequeue"][0]
	require.Len(t, trace, 32)
	for _, d := range e.rcv.deliveries() {
		parts := strings.Split(d.TraceParent, "-")
		require.Len(t, parts, 4, "a W3C traceparent: %q", d.TraceParent)
		require.Equal(t, trace, parts[1], "the receiver's traceparent is in the dequeue's trace")
	}
	require.Len(t, col.spans["delivery.attempt"], 3)
	for _, id := range col.spans["delivery.attempt"] {
		require.Equal(t, trace, id)
	}
}
