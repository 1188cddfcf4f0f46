package adapter

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
)

func startDaemon(t *testing.T, e *testEnv) *App {
	t.Helper()
	a, err := StartApp(context.Background(), e.cfg, zerolog.Nop(), AppOptions{Schedule: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
		require.NoError(t, a.Stop(ctx), "Stop is idempotent")
	})
	return a
}

func call(t *testing.T, e *testEnv, method, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, e.cfg.Server.PublicURL+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(body, out), "%s", body)
	}
	return resp.StatusCode
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, func(c *Config) {
		c.Jobs[0].Schedule = "@every 1h"
	})
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	reject := true
	e.rcv.respond = func(_ int, w http.ResponseWriter) bool {
		<-mu
		defer func() { mu <- struct{}{} }()
		if reject {
			w.WriteHeader(http.StatusGone)
			return true
		}
		return false
	}
	a := startDaemon(t, e)
	const tok = "test-admin-token"

	require.Equal(t, http.StatusUnauthorized, call(t, e, "GET", "/api/jobs", "", nil))
	require.Equal(t, http.StatusUnauthorized, call(t, e, "GET", "/api/jobs", "wrong", nil))

	var jobs []adminapi.JobView
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/jobs", tok, &jobs))
	require.Len(t, jobs, 2)
	require.Equal(t, "customer-groups", jobs[0].Name)
	require.NotNil(t, jobs[0].NextRun, "scheduled job has a next run")
	require.Nil(t, jobs[1].NextRun, "unscheduled job has none")

	e.sim.EnqueueSample(testActivity)
	var res pipeline.RunResult
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/jobs/customer-groups/run?wait=true", tok, &res))
	require.Len(t, res.Events, 3)
	require.Equal(t, http.StatusNotFound, call(t, e, "POST", "/api/jobs/nope/run", tok, nil))

	// 410: dead letters and a paused subscription.
	require.Eventually(t, func() bool {
		var subs []adminapi.SubscriptionView
		call(t, e, "GET", "/api/subscriptions", tok, &subs)
		return len(subs) == 1 && subs[0].Paused
	}, 10*time.Second, 10*time.Millisecond)
	var dead []adminapi.DeliveryView
	require.Eventually(t, func() bool {
		// Every attempt made before the pause took effect has its outcome
		// recorded (outcomes are written a few milliseconds after they
		// happen): nothing is in flight.
		c, err := a.Store.Counts(context.Background())
		require.NoError(t, err)
		call(t, e, "GET", "/api/deliveries?state=dead&subscription=flow", tok, &dead)
		return len(dead) >= 1 && c[store.StateInFlight] == 0
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 410, dead[0].LastStatus)
	require.Equal(t, http.StatusBadRequest, call(t, e, "GET", "/api/deliveries?state=bogus", tok, nil))

	<-mu
	reject = false
	mu <- struct{}{}
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/subscriptions/flow/resume", tok, nil))
	var replayed map[string]int
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/deliveries/replay?state=dead&subscription=flow", tok, &replayed))
	require.GreaterOrEqual(t, replayed["replayed"], 1)
	require.Eventually(t, func() bool {
		c, err := a.Store.Counts(context.Background())
		require.NoError(t, err)
		return c[store.StateDelivered] == 3
	}, 10*time.Second, 10*time.Millisecond, "replayed and resumed deliveries arrive")
	// Replaying one delivered delivery sends it again, same EventId.
	var all []adminapi.DeliveryView
	call(t, e, "GET", "/api/deliveries", tok, &all)
	before := len(e.rcv.deliveries())
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/deliveries/"+itoa(all[0].ID)+"/replay", tok, &replayed))
	require.Equal(t, 1, replayed["replayed"])
	require.Eventually(t, func() bool { return len(e.rcv.deliveries()) == before+1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, all[0].EventID, e.rcv.deliveries()[before].ID)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	a := startDaemon(t, e)
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/healthz", "", nil))
	var ready map[string]string
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/readyz", "", &ready))
	require.Equal(t, map[string]string{"store": "ok", "storage": "ok", "scheduler": "ok", "connection:finops": "ok"}, ready)

	e.sim.EnqueueSample(testActivity)
	_, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	// The receiver sees a request a moment before its outcome is recorded.
	var text string
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.cfg.Server.PublicURL + "/metrics")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
		return strings.Contains(text, `exportbridge_delivery_latency_seconds_count 3`)
	}, 10*time.Second, 20*time.Millisecond)
	for _, want := range []string{
		`exportbridge_polls_total{job="customer-groups",result="message"} 1`,
		`exportbridge_polls_total{job="customer-groups",result="empty"} 1`,
		`exportbridge_packages_total{job="customer-groups",result="committed"} 1`,
		`exportbridge_records_converted_total{job="customer-groups"} 75`,
		`exportbridge_bytes_converted_total{job="customer-groups"}`,
		`exportbridge_events_total{job="customer-groups",type="DataExportCompleted"} 3`,
		`exportbridge_deliveries_total{outcome="delivered",subscription="flow"} 3`,
		`exportbridge_delivery_latency_seconds_count 3`,
		`exportbridge_deliveries{state="dead"} 0`,
		`exportbridge_deliveries{state="pending"} 0`,
		`go_goroutines`,
	} {
		require.True(t, strings.Contains(text, want), "metrics lack %q:\n%s", want, grepLines(text, "exportbridge_deliver"))
	}
}

// TestReadinessSeesUnusableFilesFolder: the converted-files folder gone
// bad (here a file where the folder was) turns /readyz unready naming it,
// before a package fails on it; fixed, ready again.
func TestReadinessSeesUnusableFilesFolder(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	startDaemon(t, e)
	base := e.cfg.Server.PublicURL
	code, body := get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	require.NoError(t, os.RemoveAll(e.cfg.Files.Dir))
	require.NoError(t, os.WriteFile(e.cfg.Files.Dir, nil, 0o600))
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var checks map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &checks))
	require.Contains(t, checks["storage"], e.cfg.Files.Dir)
	require.Equal(t, "ok", checks["store"])

	require.NoError(t, os.Remove(e.cfg.Files.Dir))
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
}

func TestAPIIsOffWithoutToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, func(c *Config) { c.Server.AdminToken = "" })
	startDaemon(t, e)
	require.Equal(t, http.StatusNotFound, call(t, e, "GET", "/api/jobs", "", nil))
}

// TestJobHistorySurvivesRestarts: /api/jobs reads runs and leases from the
// store, so another process (or the next start) answers the same.
func TestJobHistorySurvivesRestarts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.sim.EnqueueSample(testActivity)
	first, err := StartApp(context.Background(), e.cfg, zerolog.Nop(), AppOptions{})
	require.NoError(t, err)
	_, err = first.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.NoError(t, first.Stop(context.Background()))

	second := startDaemon(t, e)
	require.NotEqual(t, first.Instance, second.Instance)
	var jobs []adminapi.JobView
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/jobs", "test-admin-token", &jobs))
	require.Len(t, jobs, 2)
	last := jobs[0].LastRun
	require.NotNil(t, last)
	require.Equal(t, first.Instance, last.Process)
	require.Equal(t, "ok", last.Outcome)
	require.Equal(t, 1, last.Packages)
	require.Equal(t, 3, last.Events)
	require.False(t, jobs[0].Running)
	require.Nil(t, jobs[1].LastRun, "vendors never ran")
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadAppliesSubscriptionsJobsAndTheLogLevelInPlace: App.Reload
// takes new config subscriptions, jobs and the log level without a
// restart, keeps an unchanged subscription's dispatcher, and names any
// other changed section without applying anything.
func TestReloadAppliesSubscriptionsJobsAndTheLogLevelInPlace(t *testing.T) {
	// Not parallel: it sets the process-wide log level.
	e := newTestEnv(t, finopssim.Config{}, nil)
	a := startDaemon(t, e)
	before := a.Subscriptions.Subscriptions()
	require.Len(t, before, 1)

	next := a.loaded
	next.Subscriptions = append(append([]publish.SubscriptionConfig(nil), next.Subscriptions...),
		publish.SubscriptionConfig{Name: "second", URL: e.rcv.url, Secret: a.loaded.Subscriptions[0].Secret}.WithDefaults())
	next.Jobs = append([]JobConfig(nil), next.Jobs...)
	restart, err := a.Reload(context.Background(), &next)
	require.NoError(t, err)
	require.Empty(t, restart)
	after := a.Subscriptions.Subscriptions()
	require.Len(t, after, 2)
	require.Same(t, before[0], after[0], "an unchanged subscription keeps its dispatcher")
	require.Eventually(t, func() bool { return len(a.Pub.Dispatching()) == 2 }, 10*time.Second, 10*time.Millisecond)

	// Jobs: a new schedule and a new job take effect at once.
	withJobs := next
	withJobs.Jobs = append([]JobConfig(nil), next.Jobs...)
	withJobs.Jobs[0].Schedule = "0 4 * * *"
	added := withJobs.Jobs[0]
	added.Name, added.Schedule = "customer-groups-copy", "@every 1h"
	withJobs.Jobs = append(withJobs.Jobs, added)
	restart, err = a.Reload(context.Background(), &withJobs)
	require.NoError(t, err)
	require.Empty(t, restart)
	require.True(t, a.Runner.Has("customer-groups-copy"))
	var jobs []adminapi.JobView
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/jobs", "test-admin-token", &jobs))
	require.Len(t, jobs, 3)
	require.Equal(t, "0 4 * * *", jobs[0].Schedule)
	require.Equal(t, 4, jobs[0].NextRun.Local().Hour(), "rescheduled")
	require.Equal(t, "customer-groups-copy", jobs[2].Name)
	require.NotNil(t, jobs[2].NextRun, "the new job is scheduled")
	e.sim.EnqueueSample(testActivity)
	res, err := a.Runner.Run(context.Background(), "customer-groups-copy", nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Packages, "the new job runs")

	// A connection changed: named, nothing applied.
	changed := withJobs
	changed.Connections = maps.Clone(withJobs.Connections)
	c := changed.Connections["finops"]
	c.Timeout++
	changed.Connections["finops"] = c
	changed.Subscriptions = next.Subscriptions[:1]
	restart, err = a.Reload(context.Background(), &changed)
	require.NoError(t, err)
	require.Equal(t, []string{"connections"}, restart)
	require.Len(t, a.Subscriptions.Subscriptions(), 2, "nothing applied when a restart is needed")
}

func TestLogLevelThroughTheAPI(t *testing.T) {
	// Not parallel: it sets the process-wide log level.
	e := hubEnv(t, nil)
	startDaemon(t, e)
	var got map[string]string
	require.Equal(t, 403, send(t, e, "PUT", "/api/log-level", readTok, `{"level":"debug"}`, nil), "read cannot change it")
	require.Equal(t, 400, send(t, e, "PUT", "/api/log-level", "test-admin-token", `{"level":"loud"}`, &got))
	require.Contains(t, got["error"], "use debug, info, warn or error")
	require.Equal(t, 200, send(t, e, "PUT", "/api/log-level", "test-admin-token", `{"level":"warn"}`, &got))
	require.Equal(t, "warn", got["level"])
	require.Equal(t, 200, send(t, e, "GET", "/api/log-level", readTok, "", &got))
	require.Equal(t, "warn", got["level"])
	require.Equal(t, 200, send(t, e, "PUT", "/api/log-level", "test-admin-token", `{"level":"info"}`, &got))
}

// TestStatusAndDeliveryPaging: /api/status sums up jobs, readiness,
// delivery counts and subscription states; deliveries filter by job and
// entity, page by cursor, and are counted before a replay of all matching.
func TestStatusAndDeliveryPaging(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	a := startDaemon(t, e)
	const tok = "test-admin-token"
	e.sim.EnqueueSample(testActivity)
	_, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	var st adminapi.StatusView
	require.Eventually(t, func() bool {
		require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/status", tok, &st))
		return st.Deliveries[store.StateDelivered] == 3
	}, 10*time.Second, 10*time.Millisecond)
	// Paused once all three went out (a pause before would hold them).
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/subscriptions/flow/pause", tok, nil))
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/status", tok, &st))
	require.True(t, st.Ready, "%v", st.Checks)
	require.Equal(t, "ok", st.Checks["connection:finops"])
	require.Len(t, st.Jobs, 2)
	require.Equal(t, "ok", st.Jobs[0].LastRun.Outcome)
	require.Equal(t, []adminapi.SubscriptionRow{{Name: "flow", State: adminapi.StatePaused, Reason: "paused by admin through the API"}}, st.Subscriptions)

	var all, page []adminapi.DeliveryView
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries?job=customer-groups", tok, &all))
	require.Len(t, all, 3)
	var paged []int64
	for cursor := ""; ; {
		require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries?limit=2"+cursor, tok, &page))
		for _, d := range page {
			paged = append(paged, d.ID)
		}
		if len(page) < 2 {
			break
		}
		cursor = "&before=" + itoa(page[len(page)-1].ID)
	}
	require.Equal(t, []int64{all[0].ID, all[1].ID, all[2].ID}, paged)
	var one []adminapi.DeliveryView
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries?entity="+url.QueryEscape(all[1].Entity), tok, &one))
	require.Len(t, one, 1)
	require.Equal(t, all[1].ID, one[0].ID)
	var count map[string]int
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries/count?state=delivered&job=customer-groups", tok, &count))
	require.Equal(t, 3, count["count"])
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries/count?job=nope", tok, &count))
	require.Equal(t, 0, count["count"])
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries?since="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), tok, &one))
	require.Empty(t, one)
	// The detail shows the body as receivers get it (its ControlNumber
	// filled in), less the per-attempt DownloadURL.
	var detail adminapi.DeliveryDetail
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries/"+itoa(all[0].ID), tok, &detail))
	var body struct {
		ControlNumber int64
		DownloadURL   string
	}
	require.NoError(t, json.Unmarshal(detail.Event.Body, &body))
	require.Positive(t, detail.Event.ControlNumber)
	require.Equal(t, detail.Event.ControlNumber, body.ControlNumber)
	require.Empty(t, body.DownloadURL)
	for _, bad := range []string{"since=yesterday", "until=1", "before=x", "limit=0", "state=lost"} {
		require.Equal(t, http.StatusBadRequest, call(t, e, "GET", "/api/deliveries?"+bad, tok, nil), bad)
	}
}
