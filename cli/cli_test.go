package cli

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
)

const (
	testActivity = "5f0c5b0e-0000-4000-8000-000000000001"
	testToken    = "cli-test-token"
)

// cliEnv is a config on disk, a FinOps simulator and a receiver that
// fails (500) until told otherwise.
type cliEnv struct {
	t       *testing.T
	sim     *finopssim.Server
	config  string
	ln      net.Listener // the daemon's address, bound before it starts
	failing atomic.Bool
	hits    atomic.Int32
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := &cliEnv{t: t}
	e.failing.Store(true)
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	e.sim = sim
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.hits.Add(1)
		if e.failing.Load() {
			http.Error(w, "receiver is down for maintenance", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.ln = ln
	t.Cleanup(func() { ln.Close() })
	id, secret := sim.Credentials()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[server]
listen = %q
admin_token = %q
shutdown_timeout = "5s"

[store]
dsn = "data/eb.db"

[files]
dir = "data/files"
work_dir = "data/work"

[quarantine]
dir = "data/quarantine"

[log]
level = "warn"
format = "json"

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
`, ln.Addr().String(), testToken, base, finopssim.TokenURL(base), id, secret, testActivity, rcv.URL)
	e.config = filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(e.config, []byte(cfg), 0o600))
	return e
}

// daemon starts the product on the env's address; stop stops it.
func (e *cliEnv) daemon() (a *adapter.App, stop func()) {
	e.t.Helper()
	cfg, err := adapter.LoadConfig(e.config, adapter.LoadOptions{})
	require.NoError(e.t, err)
	a, err = adapter.StartApp(context.Background(), cfg, zerolog.Nop(), adapter.AppOptions{Schedule: true, Listener: e.ln})
	require.NoError(e.t, err)
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(e.t, a.Stop(ctx))
		}
	}
	e.t.Cleanup(stop)
	return a, stop
}

// cli runs the command line with the env's config.
func (e *cliEnv) cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Execute(context.Background(), append(args, "--config", e.config), &out, &errb)
	return code, out.String(), errb.String()
}

// everyCommand walks the command tree.
func everyCommand(c *cobra.Command, path []string, fn func(path []string, c *cobra.Command)) {
	fn(path, c)
	for _, sub := range c.Commands() {
		everyCommand(sub, append(append([]string{}, path...), sub.Name()), fn)
	}
}

func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	t.Parallel()
	var n int
	everyCommand(newRoot(), nil, func(path []string, c *cobra.Command) {
		n++
		var out, errb bytes.Buffer
		code := Execute(context.Background(), append(path, "--help"), &out, &errb)
		require.Equal(t, ExitOK, code, "%v --help: %s", path, errb.String())
		require.Contains(t, out.String(), "Usage:", "%v", path)
		if c.Runnable() && len(path) > 0 && c.Name() != "help" && c.Name() != "version" && !strings.HasPrefix(strings.Join(path, " "), "completion") {
			require.NotEmpty(t, c.Example, "%v has no example", path)
			require.Contains(t, out.String(), "Examples:", "%v", path)
		}
	})
	require.Greater(t, n, 20, "the tree has every command")
	code, out, _ := (&cliEnv{}).noConfig("--help")
	require.Equal(t, ExitOK, code)
	for _, c := range []string{"run", "export-now", "check-config", "sim", "convert", "migrate-store", "status", "jobs", "deliveries", "replay", "subscriptions", "completion", "version"} {
		require.Contains(t, out, "\n  "+c+" ", "--help lists %s", c)
	}
}

func (e *cliEnv) noConfig(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCompletionScriptsGenerate(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "__start_exportbridge", "zsh": "#compdef exportbridge", "fish": "complete -c exportbridge"} {
		code, out, errOut := (&cliEnv{}).noConfig("completion", shell)
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, want, shell)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil, {"frobnicate"}, {"status", "extra"}, {"deliveries", "show", "1", "2"}, {"jobs", "run"}, {"status", "--no-such-flag"},
		{"status", "-o", "yaml"}, {"jobs"}, {"jobs", "bogus"}, {"subscriptions", "bogus"}, {"deliveries", "bogus"}, {"deliveries", "replay"}, {"deliveries", "list", "--since", "last tuesday"}, {"convert", "a.zip"},
	} {
		code, _, errOut := (&cliEnv{}).noConfig(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, errOut)
		require.NotEmpty(t, errOut, "%v says why", args)
	}
}

// normalize decodes JSON and drops what only a running process knows:
// readiness checks of its connections and scheduler, and circuits.
func normalize(t *testing.T, out string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(out), &v), "valid JSON:\n%s", out)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "checks")
			delete(x, "ready")
			delete(x, "circuit")
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return v
}

// TestSameAnswersThroughTheAPIAndTheStore runs each listing against the
// daemon's API, then with the daemon stopped (from the store), and
// compares; unknown ids, names and states exit 1 either way.
func TestSameAnswersThroughTheAPIAndTheStore(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	a, stop := e.daemon()
	e.sim.EnqueueSample(testActivity)
	_, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err := a.Store.Counts(context.Background())
		require.NoError(t, err)
		return c[store.StateDead] == 3
	}, 10*time.Second, 10*time.Millisecond, "the failing receiver dead-letters all three")

	code, out, errOut := e.cli("deliveries", "list", "-o", "json")
	require.Equal(t, ExitOK, code, errOut)
	var ds []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &ds))
	require.Len(t, ds, 3)
	for _, field := range []string{"id", "subscription", "state", "attempt", "last_status", "last_error", "event_id", "event_type", "topic", "job", "entity", "created_at"} {
		require.Contains(t, ds[0], field, "documented field")
	}
	id := fmt.Sprint(int64(ds[0]["id"].(float64)))
	documented := map[string][]string{
		"status":                {"ready", "checks", "jobs", "deliveries", "subscriptions"},
		"jobs list":             {"name", "kind", "schedule", "running", "last_run", "recent_runs"},
		"deliveries show " + id: {"id", "state", "attempts", "event"},
		"subscriptions list":    {"name", "origin", "url", "topics", "paused", "circuit"},
	}
	for cmd, fields := range documented {
		code, out, errOut := e.cli(append(strings.Fields(cmd), "-o", "json")...)
		require.Equal(t, ExitOK, code, "%s: %s", cmd, errOut)
		var v any
		require.NoError(t, json.Unmarshal([]byte(out), &v), "%s: valid JSON", cmd)
		obj, ok := v.(map[string]any)
		if list, isList := v.([]any); isList {
			require.NotEmpty(t, list, cmd)
			obj, ok = list[0].(map[string]any)
		}
		require.True(t, ok, cmd)
		for _, f := range fields {
			require.Contains(t, obj, f, "%s -o json has %s", cmd, f)
		}
	}
	code, out, _ = e.cli("status")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "from the daemon at http://"+e.ln.Addr().String())

	listings := [][]string{
		{"status", "-o", "json"}, {"jobs", "list", "-o", "json"}, {"deliveries", "list", "-o", "json"},
		{"deliveries", "list", "--state", "dead", "--job", "customer-groups", "--limit", "2", "-o", "json"},
		{"deliveries", "show", id, "-o", "json"}, {"subscriptions", "list", "-o", "json"},
	}
	viaAPI := map[string]any{}
	for _, args := range listings {
		code, out, errOut := e.cli(args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
		viaAPI[strings.Join(args, " ")] = normalize(t, out)
	}
	failures := func(mode string) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"deliveries", "show", "999999"}, "no such delivery"},
			{[]string{"replay", "--id", "999999"}, "no such delivery"},
			{[]string{"deliveries", "replay", "--id", "999999"}, "no such delivery"},
			{[]string{"subscriptions", "pause", "nope"}, "no such subscription"},
			{[]string{"jobs", "run", "nope"}, "no such job"},
			{[]string{"deliveries", "list", "--state", "lost"}, `state "lost"`},
		} {
			code, _, errOut := e.cli(tc.args...)
			require.Equal(t, ExitFailed, code, "%s %v: %s", mode, tc.args, errOut)
			require.Contains(t, errOut, tc.want, "%s %v", mode, tc.args)
		}
	}
	failures("API")
	stop()

	for _, args := range listings {
		code, out, errOut := e.cli(args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
		require.Equal(t, viaAPI[strings.Join(args, " ")], normalize(t, out), "%v: the store answers as the API did", args)
	}
	code, out, _ = e.cli("status")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "read from the store: no daemon answered")
	failures("store")

	// Without the daemon, changes go to the store, and the next daemon
	// acts on them.
	code, out, errOut = e.cli("subscriptions", "pause", "flow")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "flow: paused")
	code, out, _ = e.cli("status", "-o", "json")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, `"state": "paused"`)
	code, out, errOut = e.cli("deliveries", "replay", "--job", "customer-groups")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "3 delivery(ies) queued again")
	code, out, errOut = e.cli("subscriptions", "resume", "flow")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "flow: resumed")

	e.failing.Store(false)
	ln, err := net.Listen("tcp", e.ln.Addr().String())
	require.NoError(t, err)
	e.ln = ln
	e.daemon()
	require.Eventually(t, func() bool {
		code, out, _ := e.cli("deliveries", "list", "--state", "delivered", "-o", "json")
		var ds []map[string]any
		return code == ExitOK && json.Unmarshal([]byte(out), &ds) == nil && len(ds) == 3
	}, 10*time.Second, 20*time.Millisecond, "the replayed deliveries go out once a daemon runs")
	code, out, _ = e.cli("deliveries", "show", id)
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "receiver is down for maintenance", "the first attempt's response")
	require.Contains(t, out, "delivered")
}
