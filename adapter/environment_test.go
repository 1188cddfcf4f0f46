package adapter

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/fault/faulttest"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestFullDiskLosesNothing runs the dequeue job in the app while every
// converted file's writes fail with the kernel's ENOSPC: the run fails
// naming the job and the path, nothing is quarantined, published or
// acknowledged, /readyz and the metrics show it; once there is room again
// the redelivered message is processed and delivered.
func TestFullDiskLosesNothing(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	full.Store(true)
	clock := finopssim.NewClock(time.Now())
	e := newTestEnv(t, finopssim.Config{Now: clock.Now, VisibilityTimeout: time.Minute}, func(c *Config) {
		c.Convert.CreateTemp = faulttest.DevFull(t, full.Load)
	})
	ctx := context.Background()
	a, err := StartApp(ctx, e.cfg, zerolog.Nop(), AppOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	pkg, _ := e.sim.EnqueueSample(testActivity)

	_, err = a.Runner.Run(ctx, "customer-groups", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "job customer-groups")
	require.Contains(t, err.Error(), "no space left on device")
	require.Contains(t, err.Error(), e.cfg.Files.WorkDir, "the error names the path")

	require.Empty(t, filesUnder(t, e.cfg.Quarantine.Dir), "a full disk quarantines nothing")
	require.Empty(t, filesUnder(t, e.cfg.Files.Dir), "no partial files left")
	counts, err := a.Store.Counts(ctx)
	require.NoError(t, err)
	require.Zero(t, counts[store.StatePending]+counts[store.StateInFlight]+counts[store.StateDead]+counts[store.StateDelivered], "nothing published: %v", counts)
	for _, m := range e.sim.Messages(testActivity) {
		require.False(t, m.Acked, "the message stays in FinOps's queue")
	}
	base := "http://" + e.cfg.Server.Listen
	code, body := get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var checks map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &checks))
	require.Contains(t, checks["job:customer-groups"], "no space left on device")
	_, metrics := get(t, base+"/metrics")
	require.Contains(t, metrics, `exportbridge_runs_total{job="customer-groups",result="environment_fault"} 1`)

	// Room again; FinOps redelivers the message.
	full.Store(false)
	clock.Advance(2 * time.Minute)
	_, err = a.Runner.Run(ctx, "customer-groups", nil)
	require.NoError(t, err)
	for _, m := range e.sim.Messages(testActivity) {
		require.True(t, m.Acked)
	}
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { return len(e.rcv.byEntity()) >= len(pkg.Entities) }, 20*time.Second, 10*time.Millisecond)
	checkEntityFiles(t, e.rcv.byEntity(), pkg)
	require.False(t, strings.Contains(metrics, `result="quarantined"`))
}

// TestFullDiskKeepsTheExportOpen: a package export whose package cannot be
// written is not closed; the next run downloads the same execution again.
func TestFullDiskKeepsTheExportOpen(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	full.Store(true)
	e := newTestEnv(t, finopssim.Config{ExportPolls: 1}, func(c *Config) {
		c.Convert.CreateTemp = faulttest.DevFull(t, full.Load)
	})
	ctx := context.Background()
	a, err := StartApp(ctx, e.cfg, zerolog.Nop(), AppOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(context.Background()) })

	_, err = a.Runner.Run(ctx, "vendors", nil)
	require.ErrorContains(t, err, "no space left on device")
	open, err := a.Store.OpenExport(ctx, "vendors")
	require.NoError(t, err, "the export stays open")
	require.Empty(t, filesUnder(t, e.cfg.Quarantine.Dir))

	full.Store(false)
	_, err = a.Runner.Run(ctx, "vendors", nil)
	require.NoError(t, err)
	execs := e.sim.Executions()
	require.Len(t, execs, 1, "the same export is resumed, not started again")
	require.Equal(t, open.ExecutionID, execs[0].ID)
	pkg, ok := e.sim.ExportedPackage(execs[0].ID)
	require.True(t, ok)
	require.Eventually(t, func() bool { return len(e.rcv.byEntity()) >= len(pkg.Entities) }, 20*time.Second, 10*time.Millisecond)
	checkEntityFiles(t, e.rcv.byEntity(), pkg)
}

// TestAckThatNeverTakesEndsTheRun: FinOps answers every ack with 2xx but the
// message comes back at once (or the ack keeps failing): the run ends with
// ErrNotAcknowledged naming the message instead of taking it again and
// again until max_messages.
func TestAckThatNeverTakesEndsTheRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault finopssim.Fault
		want  string
	}{
		{"ack fails after its retries", finopssim.Fault{PathPrefix: "/api/connector/ack/", Status: http.StatusInternalServerError}, "HTTP 500"},
		{"message comes back within the run", finopssim.Fault{PathPrefix: "/api/connector/ack/", Status: http.StatusOK}, "came back during the run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, finopssim.Config{VisibilityTimeout: time.Nanosecond}, func(c *Config) {
				cc := c.Connections["finops"]
				cc.MaxAttempts, cc.RetryBase, cc.RetryMax = 2, time.Millisecond, time.Millisecond
				c.Connections["finops"] = cc
			})
			e.sim.InjectFault(tc.fault)
			_, id := e.sim.EnqueueSample(testActivity)
			ctx := context.Background()
			a, err := StartApp(ctx, e.cfg, zerolog.Nop(), AppOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = a.Stop(context.Background()) })
			res, err := a.Runner.Run(ctx, "customer-groups", nil)
			require.ErrorIs(t, err, pipeline.ErrNotAcknowledged)
			require.Contains(t, err.Error(), id, "the error names the message")
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, 1, res.Packages, "committed once")
			require.LessOrEqual(t, e.sim.Messages(testActivity)[0].Dequeues, 2, "not taken again and again")
		})
	}
}

// TestCircuitOpensInTheDaemon: a subscriber that keeps answering 503 opens
// its circuit; /api/subscriptions and the metrics show it, and the
// remaining deliveries wait (pending, attempts unspent) instead of being
// tried one after another.
func TestCircuitOpensInTheDaemon(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{Rows: 2}, func(c *Config) {
		c.Subscriptions[0].BreakerThreshold = 2
		c.Subscriptions[0].BreakerInterval, c.Subscriptions[0].BreakerMaxInterval = time.Hour, time.Hour
		c.Subscriptions[0].MaxInFlight = 1
	})
	e.rcv.respond = func(_ int, w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true }
	for range 3 {
		e.sim.EnqueueSample(testActivity)
	}
	a := startDaemon(t, e)
	_, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)

	var subs []adminapi.SubscriptionView
	require.Eventually(t, func() bool {
		require.Equal(t, http.StatusOK, call(t, e, http.MethodGet, "/api/subscriptions", "test-admin-token", &subs))
		return len(subs) == 1 && subs[0].Circuit.State == "open"
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, subs[0].Circuit.ConsecutiveFailures)
	require.False(t, subs[0].Circuit.NextProbeAt.IsZero())
	require.Never(t, func() bool { return len(e.rcv.deliveries()) > 2 }, 300*time.Millisecond, 10*time.Millisecond, "no attempts while open")
	counts, err := a.Store.Counts(context.Background())
	require.NoError(t, err)
	require.Equal(t, 9, counts["pending"], "all nine deliveries wait: %v", counts)
	_, metrics := get(t, "http://"+e.cfg.Server.Listen+"/metrics")
	require.Contains(t, metrics, `exportbridge_subscription_circuit_open{subscription="flow"} 1`)
}

// TestForeignDownloadLocationIsRefusedInTheDaemon: a dequeue answer whose
// DownloadLocation names another host: the run fails naming that host, the
// host never sees a request (let alone the token), nothing is acknowledged.
func TestForeignDownloadLocationIsRefusedInTheDaemon(t *testing.T) {
	t.Parallel()
	var thiefHits, acks atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { thiefHits.Add(1) }))
	t.Cleanup(thief.Close)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/connector/dequeue/"):
			_ = json.NewEncoder(w).Encode(map[string]string{"CorrelationId": "c-1", "PopReceipt": "p",
				"DownloadLocation": thief.URL + "/api/connector/download/x?blob=b"})
		case strings.HasPrefix(r.URL.Path, "/api/connector/ack/"):
			acks.Add(1)
		}
	}))
	t.Cleanup(fake.Close)
	e := newTestEnv(t, finopssim.Config{}, func(c *Config) {
		cc := c.Connections["finops"]
		cc.BaseURL, cc.Scope = fake.URL, ""
		c.Connections["finops"] = cc
	})
	a := startDaemon(t, e)
	_, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.ErrorIs(t, err, finops.ErrForeignHost)
	require.Contains(t, err.Error(), strings.TrimPrefix(thief.URL, "http://"))
	require.Zero(t, thiefHits.Load())
	require.Zero(t, acks.Load())
}

// TestReadinessAndMetricsCatchAFailingConnection: FinOps refusing
// connections, and the token endpoint refusing the client secret, each
// turn /readyz unready (naming the connection) after unready_after failed
// runs, and count as failed polls.
func TestReadinessAndMetricsCatchAFailingConnection(t *testing.T) {
	t.Parallel()
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close()) // connections to it are refused from now on
		return "http://" + addr
	}()
	for name, mutate := range map[string]func(c *Config){
		"FinOps refuses connections": func(c *Config) {
			cc := c.Connections["finops"]
			cc.BaseURL = refused
			c.Connections["finops"] = cc
		},
		"token endpoint answers 401": func(c *Config) {
			cc := c.Connections["finops"]
			cc.ClientSecret = "wrong-secret"
			c.Connections["finops"] = cc
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, finopssim.Config{}, func(c *Config) {
				c.Jobs[0].Schedule = "@every 1h"
				mutate(c)
				cc := c.Connections["finops"]
				cc.MaxAttempts, cc.UnreadyAfter = 1, 2
				c.Connections["finops"] = cc
			})
			startDaemon(t, e)
			var ready map[string]string
			require.Equal(t, http.StatusOK, call(t, e, "GET", "/readyz", "", &ready))
			for i := range 2 {
				require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/jobs/customer-groups/run?wait=true", "test-admin-token", nil), "run %d", i)
			}
			resp, err := http.Get(e.cfg.Server.PublicURL + "/readyz")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
			var checks map[string]string
			require.NoError(t, json.Unmarshal(body, &checks))
			require.Contains(t, checks["connection:finops"], "2 calls in a row failed")
			require.NotContains(t, checks["connection:finops"], "wrong-secret")

			resp, err = http.Get(e.cfg.Server.PublicURL + "/metrics")
			require.NoError(t, err)
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Contains(t, string(metrics), `exportbridge_polls_total{job="customer-groups",result="error"} 2`)
			require.Contains(t, string(metrics), `exportbridge_build_info{version=`)
			require.Contains(t, string(metrics), `exportbridge_subscription_state{state="active",subscription="flow"} 1`)
		})
	}
}

// TestARefusedExportStartCountsAsAFailedPoll: ExportToPackage refused
// reaches exportbridge_polls_total{result="error"}.
func TestARefusedExportStartCountsAsAFailedPoll(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	startDaemon(t, e)
	e.sim.InjectFault(finopssim.Fault{PathPrefix: "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage",
		Status: http.StatusBadRequest, Times: 1})
	require.Equal(t, http.StatusOK, call(t, e, "POST", "/api/jobs/vendors/run?wait=true", "test-admin-token", nil))
	resp, err := http.Get(e.cfg.Server.PublicURL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), `exportbridge_polls_total{job="vendors",result="error"} 1`)
}

// TestLastSuccessSurvivesARestart: the last successful run comes from the
// run history, so a daemon started after it reports it.
func TestLastSuccessSurvivesARestart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{}, nil)
	e.sim.EnqueueSample(testActivity)
	require.NoError(t, e.exportNow("customer-groups"))
	startDaemon(t, e)
	resp, err := http.Get(e.cfg.Server.PublicURL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Regexp(t, `exportbridge_job_last_success_timestamp_seconds\{job="customer-groups"\} \d\.\d+e\+09`, string(metrics))
	require.NotContains(t, string(metrics), `exportbridge_job_last_success_timestamp_seconds{job="vendors"}`, "vendors never ran")
}
