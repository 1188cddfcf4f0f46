package console_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

const (
	activity   = "5f0c5b0e-0000-4000-8000-000000000001"
	adminToken = "page-admin-token-0123456789"
	readToken  = "page-read-token-0123456789"
)

// daemon is the real product on loopback: the FinOps simulator, a
// receiver that answers 500 until told otherwise, and the daemon's page.
type daemon struct {
	app     *adapter.App
	sim     *finopssim.Server
	base    string
	failing atomic.Bool
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	d := &daemon{}
	d.failing.Store(true)
	sim, simURL := finopssim.StartTest(t, finopssim.Config{})
	d.sim = sim
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if d.failing.Load() {
			http.Error(w, "receiver down for maintenance", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	id, secret := sim.Credentials()
	dir := t.TempDir()
	cfgText := fmt.Sprintf(`
[server]
listen = %q
admin_token = %q
shutdown_timeout = "5s"

[[tokens]]
name = "viewer"
token = %q
scopes = ["read"]

[store]
dsn = "eb.db"

[files]
dir = "files"
work_dir = "work"

[quarantine]
dir = "quarantine"

[connections.finops]
base_url = %q
token_url = %q
client_id = %q
client_secret = %q

[[jobs]]
name = "customer-groups"
kind = "dequeue"
connection = "finops"
activity_id = %q
schedule = "0 3 * * *"

[[subscriptions]]
name = "flow"
url = %q
retry = []
breaker_threshold = -1
`, ln.Addr().String(), adminToken, readToken, simURL, finopssim.TokenURL(simURL), id, secret, activity, rcv.URL)
	path := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfgText), 0o600))
	cfg, err := adapter.LoadConfig(path, adapter.LoadOptions{})
	require.NoError(t, err)
	d.app, err = adapter.StartApp(context.Background(), cfg, zerolog.Nop(), adapter.AppOptions{Schedule: true, Listener: ln})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.app.Stop(ctx))
	})
	d.base = "http://" + ln.Addr().String()
	return d
}

// runJob brings a package in, as the scheduler would.
func (d *daemon) runJob(t *testing.T) {
	t.Helper()
	d.sim.EnqueueSample(activity)
	_, err := d.app.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
}

func (d *daemon) waitCount(t *testing.T, state string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := d.app.Store.Counts(context.Background())
		require.NoError(t, err)
		return c[state] == n
	}, 15*time.Second, 20*time.Millisecond, "%d %s deliveries", n, state)
}

// browser is headless Chromium; on failure the test keeps a screenshot.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := testservice.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			shotCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if png, err := chromedp.Run(shotCtx, chromedp.FullScreenshot(100)); err == nil {
				dir := os.Getenv("EXPORTBRIDGE_SCREENSHOTS")
				if dir == "" {
					dir = filepath.Join(os.TempDir(), "exportbridge-screenshots")
				}
				_ = os.MkdirAll(dir, 0o755)
				file := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
				if os.WriteFile(file, png, 0o644) == nil {
					t.Logf("screenshot of the page at the failure: %s", file)
				}
			}
		}
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	require.NoError(t, chromedp.Do(ctx), "starting Chromium")
	return ctx
}

func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#sign-in`)),
		chromedp.WaitVisible(chromedp.CSS(`#jobs`)),
	))
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return s
}

// peek reads an element's text while the page may be changing under it
// (an htmx swap, a reload): "" when it is not there now. For polling.
func peek(ctx context.Context, sel string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		return ""
	}
	return s
}

// peekCount is count for polling: -1 while the page is changing.
func peekCount(ctx context.Context, sel string) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		return -1
	}
	return len(nodes)
}

func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	require.NoError(t, err, sel)
	return len(nodes)
}

// TestOperatorFindsAndReplaysADeadDelivery is the page as an operator uses
// it, in Chromium against the real daemon: sign in, see the job's last
// run, follow the dead count to the dead deliveries, open one's attempts,
// replay it and see it delivered; then replay the rest after confirming
// how many; pause and resume the subscription; watch events arrive live.
func TestOperatorFindsAndReplaysADeadDelivery(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.runJob(t)
	d.waitCount(t, store.StateDead, 3)
	ctx := browser(t)

	signIn(t, ctx, d.base, adminToken)
	run := text(t, ctx, `#jobs tr[data-job="customer-groups"] .run`)
	require.Contains(t, run, "ok")
	require.Contains(t, run, "1 package(s), 3 event(s)")
	require.Equal(t, "3 dead", strings.Join(strings.Fields(text(t, ctx, `a[data-state="dead"]`)), " "))

	// The dead count leads to the dead deliveries; the first opens.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[data-state="dead"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deliveries tr[data-state="dead"]`)),
	))
	require.Equal(t, 3, count(t, ctx, `#deliveries tr[data-state="dead"]`))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#deliveries tr[data-state="dead"] a.delivery-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#attempts`)),
	))
	require.Equal(t, "dead", text(t, ctx, `#state`))
	attempts := text(t, ctx, `#attempts tbody`)
	require.Contains(t, attempts, "500")
	require.Contains(t, attempts, "receiver down for maintenance", "the response excerpt")
	require.Contains(t, text(t, ctx, `#body`), `"BusinessEventId"`, "the event body")

	// The receiver is back: replay it and see it delivered.
	d.failing.Store(false)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#replay`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	))
	require.Contains(t, text(t, ctx, `#flash`), "queued again")
	require.Eventually(t, func() bool {
		require.NoError(t, chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#state`))))
		return peek(ctx, `#state`) == "delivered"
	}, 15*time.Second, 100*time.Millisecond, "the page shows the replayed delivery delivered")
	require.Equal(t, 2, count(t, ctx, `#attempts tbody tr`), "the failed attempt and the replayed one")
	require.Contains(t, text(t, ctx, `#attempts tbody tr:last-child .status`), "204")

	// The two left: "Replay all matching" says how many and asks first.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(d.base+"/deliveries?state=dead"),
		chromedp.Click(chromedp.CSS(`#replay-all`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-replay`)),
	))
	require.Contains(t, text(t, ctx, `#replay-count`), "2 dead deliveries match")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#confirm-replay`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	))
	require.Contains(t, text(t, ctx, `#flash`), "2 deliveries queued again")
	d.waitCount(t, store.StateDelivered, 3)

	// Pause and resume: the button swaps the page for the one that says so.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(d.base+"/subscriptions"),
		chromedp.Click(chromedp.CSS(`tr[data-subscription="flow"] button`)),
	))
	require.Eventually(t, func() bool { return peek(ctx, `#flash`) == "flow: paused" }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, text(t, ctx, `tr[data-subscription="flow"] .sub-state`), "paused")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-subscription="flow"] button`))))
	require.Eventually(t, func() bool { return peek(ctx, `#flash`) == "flow: resumed" }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "active", text(t, ctx, `tr[data-subscription="flow"] .sub-state`))

	// Live: events appear as they commit.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(d.base+"/live")))
	require.Eventually(t, func() bool { return peek(ctx, `#live-state`) == "connected" }, 15*time.Second, 50*time.Millisecond)
	d.runJob(t)
	require.Eventually(t, func() bool { return peekCount(ctx, `#events li`) == 3 }, 15*time.Second, 50*time.Millisecond,
		"the three new events show")
	require.Contains(t, text(t, ctx, `#events`), "DataExportCompleted")
}

// TestReadSessionsSeeNoActions: a read token signs in and sees jobs and
// deliveries, but no button that changes anything.
func TestReadSessionsSeeNoActions(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.runJob(t)
	d.waitCount(t, store.StateDead, 3)
	ctx := browser(t)
	signIn(t, ctx, d.base, readToken)
	require.Contains(t, text(t, ctx, `header .who`), "viewer (read only)")
	require.Contains(t, text(t, ctx, `#jobs`), "customer-groups")
	require.Zero(t, count(t, ctx, `#jobs button`), "no Run now")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(d.base+"/deliveries?state=dead"),
		chromedp.WaitVisible(chromedp.CSS(`#deliveries`)),
	))
	require.Zero(t, count(t, ctx, `#replay-all`))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a.delivery-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#attempts`)),
	))
	require.Zero(t, count(t, ctx, `#replay`))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(d.base+"/subscriptions"),
		chromedp.WaitVisible(chromedp.CSS(`#subscriptions`)),
	))
	require.Zero(t, count(t, ctx, `#subscriptions button`))
	require.Zero(t, count(t, ctx, `form.subscription`))
	// Signing out ends the session.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`.logout button`)),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.Navigate(d.base+"/deliveries"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
	))
}
