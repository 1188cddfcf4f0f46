package adapter

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault/faulttest"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
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
	require.Contains(t, err.Error(), e.cfg.Files.Dir, "the error names the path")

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
			require.ErrorIs(t, err, ErrNotAcknowledged)
			require.Contains(t, err.Error(), id, "the error names the message")
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, 1, res.Packages, "committed once")
			require.LessOrEqual(t, e.sim.Messages(testActivity)[0].Dequeues, 2, "not taken again and again")
		})
	}
}
