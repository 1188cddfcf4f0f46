package adapter

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/testservice"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/telemetry"
)

// spanTree starts the product with spans going to memory, runs job with
// trigger, and returns the spans.
func spanTree(t *testing.T, job string, prepare func(*testEnv)) tracetest.SpanStubs {
	t.Helper()
	spans, _, _ := tracedRun(t, job, prepare, io.Discard)
	var run tracetest.SpanStubs
	for _, s := range spans {
		if s.Name != "delivery.attempt" { // later, and maybe elsewhere: TestDeliveryAttemptsJoinTheRunsTrace
			run = append(run, s)
		}
	}
	return run
}

// tracedRun runs job with spans going to memory; it returns them once the
// run's deliveries are made, with the exporter and the environment.
func tracedRun(t *testing.T, job string, prepare func(*testEnv), logs io.Writer) (tracetest.SpanStubs, *tracetest.InMemoryExporter, *testEnv) {
	t.Helper()
	e := newTestEnv(t, finopssim.Config{ExportPolls: 2}, nil)
	prepare(e)
	exp := tracetest.NewInMemoryExporter()
	a, err := StartApp(context.Background(), e.cfg, zerolog.New(logs), AppOptions{Telemetry: []telemetry.Option{telemetry.WithExporter(exp)}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	_, err = a.Runner.Run(pipeline.WithTrigger(context.Background(), pipeline.TriggerAPI), job, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n := 0
		for _, s := range exp.GetSpans() {
			if s.Name == "delivery.attempt" {
				n++
			}
		}
		return n == 3
	}, 10*time.Second, 10*time.Millisecond, "the three attempts are traced")
	return exp.GetSpans(), exp, e
}

func attrs(kvs []attribute.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.AsInterface()
	}
	return out
}

// checkTree: one root "job.run" with the run's attributes; every other
// span is its child, in its trace; names counts the spans of each name.
func checkTree(t *testing.T, spans tracetest.SpanStubs, job string) (map[string]int, map[string]tracetest.SpanStub) {
	t.Helper()
	names := map[string]int{}
	byName := map[string]tracetest.SpanStub{}
	var root tracetest.SpanStub
	for _, s := range spans {
		names[s.Name]++
		byName[s.Name] = s
		if s.Name == "job.run" {
			root = s
		}
	}
	require.Equal(t, 1, names["job.run"], "%v", names)
	ra := attrs(root.Attributes)
	require.Equal(t, job, ra["exportbridge.job"])
	require.Equal(t, "api", ra["exportbridge.trigger"])
	require.Contains(t, []any{KindDequeue, KindPackageExport}, ra["exportbridge.job.kind"])
	require.Equal(t, "ok", ra["exportbridge.result"])
	require.Equal(t, int64(1), ra["exportbridge.packages"])
	require.Equal(t, int64(3), ra["exportbridge.events"])
	require.False(t, root.Parent.IsValid(), "job.run is the root")
	for _, s := range spans {
		require.Equal(t, root.SpanContext.TraceID(), s.SpanContext.TraceID(), "%s is in the run's trace", s.Name)
		if s.Name != "job.run" && s.Name != "package.convert.entity" {
			require.Equal(t, root.SpanContext.SpanID(), s.Parent.SpanID(), "%s is a child of job.run", s.Name)
		}
	}
	conv := byName["package.convert"]
	require.Equal(t, 3, names["package.convert.entity"], "a span per converted entity")
	for _, s := range spans {
		if s.Name == "package.convert.entity" {
			require.Equal(t, conv.SpanContext.SpanID(), s.Parent.SpanID(), "a child of package.convert")
			require.False(t, s.EndTime.Before(s.StartTime))
			ea := attrs(s.Attributes)
			require.NotEmpty(t, ea["exportbridge.entity"])
			require.Positive(t, ea["exportbridge.records"])
			require.Positive(t, ea["exportbridge.bytes"])
			require.NotEmpty(t, ea["exportbridge.format"])
		}
	}
	ca := attrs(byName["package.commit"].Attributes)
	require.Equal(t, int64(3), ca["exportbridge.events"])
	require.Equal(t, int64(3), ca["exportbridge.deliveries"])
	return names, byName
}

func TestTheSpansOfADequeueRun(t *testing.T) {
	t.Parallel()
	spans := spanTree(t, "customer-groups", func(e *testEnv) { e.sim.EnqueueSample(testActivity) })
	names, byName := checkTree(t, spans, "customer-groups")
	require.Equal(t, 2, names["finops.dequeue"], "the message, then an empty queue")
	require.Equal(t, 1, names["finops.download"])
	require.Equal(t, 1, names["finops.ack"])
	require.Equal(t, 1, names["package.convert"])
	require.Equal(t, 1, names["package.commit"])
	dl := attrs(byName["finops.download"].Attributes)
	require.Equal(t, int64(200), dl["http.response.status_code"])
	require.Positive(t, dl["finops.bytes"])
	require.Equal(t, "download", dl["finops.op"])
}

func TestTheSpansOfAnExportRun(t *testing.T) {
	t.Parallel()
	spans := spanTree(t, "vendors", func(*testEnv) {})
	names, _ := checkTree(t, spans, "vendors")
	require.Equal(t, 1, names["finops.ExportToPackage"], "%v", names)
	require.GreaterOrEqual(t, names["finops.GetExecutionSummaryStatus"], 2, "each status poll")
	require.GreaterOrEqual(t, names["finops.GetExportedPackageUrl"], 1, "until FinOps has the URL")
	require.Equal(t, 1, names["finops.package download"])
}

// TestDeliveryAttemptsJoinTheRunsTrace: each delivery attempt is a span in
// the trace of the run that made its event (a child of the commit, and
// linked to it), and the webhook's traceparent carries that trace on.
func TestDeliveryAttemptsJoinTheRunsTrace(t *testing.T) {
	t.Parallel()
	var logs testservice.Buffer
	spans, _, e := tracedRun(t, "customer-groups", func(e *testEnv) { e.sim.EnqueueSample(testActivity) }, &logs)
	var commit tracetest.SpanStub
	var attempts []tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case "package.commit":
			commit = s
		case "delivery.attempt":
			attempts = append(attempts, s)
		}
	}
	require.Len(t, attempts, 3)
	for _, at := range attempts {
		require.Equal(t, commit.SpanContext.TraceID(), at.SpanContext.TraceID(), "the run's trace")
		require.Equal(t, commit.SpanContext.SpanID(), at.Parent.SpanID(), "a child of the commit that made the event")
		require.Len(t, at.Links, 1)
		require.Equal(t, commit.SpanContext.SpanID(), at.Links[0].SpanContext.SpanID(), "and linked to it")
		a := attrs(at.Attributes)
		require.Equal(t, "flow", a["exportbridge.subscription"])
		require.Equal(t, int64(1), a["exportbridge.attempt"])
		require.Equal(t, int64(204), a["http.response.status_code"])
		require.Equal(t, "delivered", a["exportbridge.outcome"])
	}
	got := e.rcv.deliveries()
	require.Len(t, got, 3)
	for _, d := range got {
		require.Contains(t, d.TraceParent, commit.SpanContext.TraceID().String(), "the webhook carries the run's trace id")
	}
	// Log lines inside the run carry its trace.
	var committed map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"message":"package committed"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &committed))
		}
	}
	require.NotNil(t, committed, "the run logged its commit:\n%s", logs.String())
	require.Equal(t, commit.SpanContext.TraceID().String(), committed["trace_id"])
	require.NotEmpty(t, committed["span_id"])

	// The latency histogram carries the attempts' trace id as an exemplar
	// (OpenMetrics, which a scraper asks for).
	req, err := http.NewRequest("GET", "http://"+e.cfg.Server.Listen+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `exportbridge_delivery_latency_seconds_bucket\{le="[^"]+"\} \d+ # \{trace_id="`+commit.SpanContext.TraceID().String()+`"\}`, string(body))
}

// TestARaisedEventContinuesTheClientsTrace: a raise with a traceparent
// header stores it; the webhook and the stream messages carry it on (here
// with telemetry off: as the client sent it). A malformed one is dropped.
func TestARaisedEventContinuesTheClientsTrace(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, func(c *Config) {
		c.Subscriptions[0].Topics = []string{"transaction"}
	})
	startDaemon(t, e)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	raise := func(header string) {
		req, err := http.NewRequest("POST", e.cfg.Server.PublicURL+"/api/events",
			strings.NewReader(`{"events":[{"topic":"transaction/credit","data":{"amount":5}}]}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+publishTok)
		req.Header.Set("traceparent", header)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	raise(tp)
	raise("00-not-a-trace")
	require.Eventually(t, func() bool { return len(e.rcv.deliveries()) == 2 }, 10*time.Second, 10*time.Millisecond)
	got := map[string]bool{}
	for _, d := range e.rcv.deliveries() {
		got[d.TraceParent] = true
	}
	require.Equal(t, map[string]bool{tp: true, "": true}, got, "the webhook carries the client's trace; a bad header is dropped")

	var page struct {
		Events []map[string]any `json:"events"`
	}
	require.Equal(t, http.StatusOK, send(t, e, "GET", "/api/events?topics=transaction&after=0", subscribeTok, "", &page))
	require.Len(t, page.Events, 2)
	require.Equal(t, tp, page.Events[0]["traceparent"], "the stream message carries it (CloudEvents distributed tracing)")
	require.NotContains(t, page.Events[1], "traceparent")
}
