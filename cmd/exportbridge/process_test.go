package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// binary is the real exportbridge, built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(rssSpawnEnv) != "" {
		os.Exit(spawnForRSS(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "exportbridge-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "exportbridge")
	if out, err := exec.Command("go", "build", "-ldflags", "-X github.com/exportbridge/exportbridge/internal/version.version="+testVersion,
		"-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building exportbridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// rssSpawnEnv makes the test binary a spawner: it runs its arguments as a
// command and reports that command's peak RSS (spawnForRSS).
const rssSpawnEnv = "EXPORTBRIDGE_TEST_RSS_SPAWN"

// spawnForRSS runs args and writes "peak_rss_kb=N" to stderr, exiting with
// the command's code. Linux carries the RSS high-water mark of the memory
// a process had before exec into its rusage, and os/exec starts children
// on the parent's memory (vfork): a child of the test process, grown by
// every parallel test, would report the test's peak. A child of this small
// spawner reports its own.
func spawnForRSS(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprintf(os.Stderr, "\npeak_rss_kb=%d\n", ru.Maxrss)
	}
	return cmd.ProcessState.ExitCode()
}

// testVersion is stamped into the test binary the way a release is.
const testVersion = "9.8.7-test"

const (
	procActivity = "5f0c5b0e-0000-4000-8000-000000000001"
	procSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// sink is a webhook receiver that verifies signatures and records events.
type sink struct {
	mu     sync.Mutex
	got    []map[string]any
	agents map[string]int // User-Agent headers seen
	delay  atomic.Int64   // nanoseconds to hold each request
	gate   atomic.Pointer[chan struct{}]
	url    string
}

// hold keeps every request waiting, unanswered, until release is called:
// a delivery seen in flight stays in flight, however slow the machine.
func (s *sink) hold() (release func()) {
	g := make(chan struct{})
	s.gate.Store(&g)
	return func() { s.gate.Store(nil); close(g) }
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{agents: map[string]int{}}
	key, err := publish.DecodeSecret(procSecret)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := publish.Verify([][]byte{key}, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("bad signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("bad body: %v", err)
		}
		if g := s.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-r.Context().Done():
				return // the sender gave up or died: not received
			}
		}
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return // the sender gave up: not received
			}
		}
		s.mu.Lock()
		s.got = append(s.got, ev)
		s.agents[r.Header.Get("User-Agent")]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// idsByEntity maps each completed (package, entity) — "MessageId/entity" —
// to the distinct EventIds seen for it.
func (s *sink) idsByEntity() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]int{}
	for _, ev := range s.got {
		if ev["BusinessEventId"] != dataexport.TypeCompleted {
			continue
		}
		ent := ev["MessageId"].(string) + "/" + ev["EntityName"].(string)
		if out[ent] == nil {
			out[ent] = map[string]int{}
		}
		out[ent][ev["EventId"].(string)]++
	}
	return out
}

type procEnv struct {
	t      *testing.T
	sim    *finopssim.Server
	sink   *sink
	dir    string
	config string
	listen string // "127.0.0.1:0": each process binds a free port and logs it
}

// boundAddr waits until a process's log says where its HTTP server listens.
func boundAddr(t *testing.T, out *syncBuffer) string {
	t.Helper()
	re := regexp.MustCompile(`"component":"http","listen":"([^"]+)"`)
	var addr string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, 20*time.Second, 10*time.Millisecond, "the process never logged its HTTP address")
	return addr
}

func newProcEnv(t *testing.T, simCfg finopssim.Config, extra string) *procEnv {
	t.Helper()
	sim, base := finopssim.StartTest(t, simCfg)
	id, secret := sim.Credentials()
	e := &procEnv{t: t, sim: sim, sink: newSink(t), dir: t.TempDir(), listen: "127.0.0.1:0"}
	cfg := fmt.Sprintf(`
[server]
listen = %q
shutdown_timeout = "2s"

[store]
dsn = %q
lease_ttl = "1s"  # a killed process's deliveries are taken over within a second

[files]
dir = %q
work_dir = %q

[quarantine]
dir = %q

[log]
level = "debug"
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

[[jobs]]
name = "vendors"
kind = "package-export"
connection = "finops"
definition_group = "Vendors export"
poll_interval = "50ms"
timeout = "1m"

[[subscriptions]]
name = "flow"
url = %q
secret = %q
retry = ["50ms", "50ms", "50ms", "50ms"]
%s
`, e.listen, filepath.Join(e.dir, "data/eb.db"), filepath.Join(e.dir, "data/files"), filepath.Join(e.dir, "data/work"),
		filepath.Join(e.dir, "data/quarantine"), base, finopssim.TokenURL(base), id, secret, procActivity, e.sink.url, procSecret, extra)
	e.config = filepath.Join(e.dir, "config.toml")
	require.NoError(t, os.WriteFile(e.config, []byte(cfg), 0o600))
	return e
}

// run starts the binary and waits for it (up to a minute).
func (e *procEnv) run(failpoint string, args ...string) (*exec.Cmd, string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--config", e.config)...)
	cmd.Env = append(os.Environ(), adapter.FailpointEnv+"="+failpoint)
	out, err := cmd.CombinedOutput()
	return cmd, string(out), err
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashAtEveryPointLosesNothing kills the real binary with SIGKILL at
// each failpoint, starts it again, and checks: every entity's event was
// delivered, under one EventId only; no message is left unacknowledged; no
// package export was started twice.
func TestCrashAtEveryPointLosesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failpoint, job string
	}{
		{"after-download", "customer-groups"},
		{"after-commit", "customer-groups"},
		{"during-delivery", "customer-groups"},
		{"while-polling", "vendors"},
		{"after-commit", "vendors"},
	} {
		t.Run(tc.failpoint+"/"+tc.job, func(t *testing.T) {
			t.Parallel()
			// The simulator's clock is the test's: after the crash it is moved
			// past the visibility timeout, so FinOps redelivers an unacked
			// message to the restarted process.
			clock := finopssim.NewClock(time.Now())
			e := newProcEnv(t, finopssim.Config{Now: clock.Now, VisibilityTimeout: time.Minute, ExportPolls: 3}, "")
			if tc.job == "customer-groups" {
				e.sim.EnqueueSample(procActivity)
			}
			_, out, err := e.run(tc.failpoint, "export-now", "--job", tc.job)
			require.True(t, killedBySIGKILL(err), "expected SIGKILL at %s, got %v:\n%s", tc.failpoint, err, out)
			clock.Advance(2 * time.Minute) // past the visibility timeout

			_, out, err = e.run("", "export-now", "--job", tc.job)
			require.NoError(t, err, "restart:\n%s", out)

			packages := 1
			if tc.job == "vendors" {
				// Each execution was started once. After a crash past the
				// commit the export was complete, so the restart runs a new one.
				execs := e.sim.Executions()
				require.Equal(t, len(execs), e.sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage"),
					"no export started twice")
				want := 1
				if tc.failpoint == "after-commit" {
					want = 2
				}
				require.Len(t, execs, want)
				packages = len(execs)
			}
			ids := e.sink.idsByEntity()
			require.Len(t, ids, 3*packages, "every entity of every package delivered: %v\n%s", ids, out)
			for ent, set := range ids {
				require.Len(t, set, 1, "%s delivered under %d EventIds", ent, len(set))
			}
			for _, m := range e.sim.Messages(procActivity) {
				require.True(t, m.Acked, "message %s left unacknowledged", m.CorrelationID)
			}
		})
	}
}

// TestGracefulShutdownReleasesDeliveries: SIGTERM while attempts hang on a
// slow receiver; the daemon exits within its deadline, leaves no delivery
// in flight, and the next start delivers everything.
func TestGracefulShutdownReleasesDeliveries(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{}, "")
	cfg, err := os.ReadFile(e.config)
	require.NoError(t, err)
	schedCfg := strings.Replace(string(cfg), `activity_id = "`+procActivity+`"`, `activity_id = "`+procActivity+"\"\nschedule = \"@every 1s\"", 1)
	require.NoError(t, os.WriteFile(e.config, []byte(schedCfg), 0o600))
	e.sim.EnqueueSample(procActivity)
	e.sink.delay.Store(int64(30 * time.Second)) // the receiver hangs

	cmd := exec.Command(binary, "run", "--config", e.config)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	st := waitForInFlight(t, filepath.Join(e.dir, "data/eb.db"))
	require.NoError(t, st.Close())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		require.NoError(t, err, "a drain cut short by the deadline is a clean stop (exit 0):\n%s", out.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("daemon did not stop within 10s of SIGTERM:\n%s", out.String())
	}
	require.Contains(t, out.String(), "shutting down")
	require.Contains(t, out.String(), "stopped at the deadline")

	st, err = store.OpenSQLite(context.Background(), filepath.Join(e.dir, "data/eb.db"))
	require.NoError(t, err)
	counts, err := st.Counts(context.Background())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.Zero(t, counts[store.StateInFlight], "no delivery left in flight: %v", counts)
	require.Equal(t, 3, counts[store.StatePending], "released to pending: %v", counts)

	// The next start delivers the rest.
	e.sink.delay.Store(0)
	_, out2, err := e.run("", "export-now", "--job", "customer-groups")
	require.NoError(t, err, "%s", out2)
	ids := e.sink.idsByEntity()
	require.Len(t, ids, 3)
}

func waitForInFlight(t *testing.T, db string) *store.SQLite {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(db); err == nil {
			st, err := store.OpenSQLite(context.Background(), db)
			if err == nil {
				c, err := st.Counts(context.Background())
				if err == nil && c[store.StateInFlight] > 0 {
					return st
				}
				st.Close()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no delivery went in flight")
	return nil
}

// TestExportNowExitCodes runs the binary: 0 when everything is delivered,
// 1 with a summary when a subscriber answers 400.
func TestExportNowExitCodes(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{}, "")
	e.sim.EnqueueSample(procActivity)
	cmd, out, err := e.run("", "export-now", "--job", "customer-groups")
	require.NoError(t, err, "%s", out)
	require.Equal(t, 0, cmd.ProcessState.ExitCode())
	require.Contains(t, out, "customer-groups: 1 package(s), 3 event(s)")
	require.Contains(t, out, "deliveries: 3 delivered, 0 dead")
	_, list, err := e.run("", "deliveries")
	require.NoError(t, err, "%s", list)
	require.Equal(t, 3, strings.Count(list, " delivered "), "the CLI lists the three deliveries:\n%s", list)
	require.Contains(t, list, "LAST ERROR")

	e.sink.mu.Lock()
	require.Equal(t, map[string]int{"exportbridge/" + testVersion: 3}, e.sink.agents, "webhooks carry the build's version")
	e.sink.mu.Unlock()
	agents := e.sim.UserAgents()
	require.Positive(t, agents["exportbridge/"+testVersion], "FinOps calls carry the same version: %v", agents)
	for ua := range agents {
		require.Contains(t, []string{"exportbridge/" + testVersion, "Go-http-client/1.1"}, ua, "only the token request is x/oauth2's own")
	}

	bad := newProcEnv(t, finopssim.Config{}, "")
	rejecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "schema mismatch", http.StatusBadRequest)
	}))
	t.Cleanup(rejecting.Close)
	cfg, err := os.ReadFile(bad.config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad.config, []byte(strings.Replace(string(cfg), bad.sink.url, rejecting.URL, 1)), 0o600))
	bad.sim.EnqueueSample(procActivity)
	cmd, out, err = bad.run("", "export-now", "--job", "customer-groups")
	require.Error(t, err)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
	require.Contains(t, out, "not everything was exported and delivered")
	require.Contains(t, out, "is dead after 1 attempt(s): HTTP 400: schema mismatch")
	require.Contains(t, out, "deliveries: 0 delivered, 3 dead")

	cmd, _, _ = e.run("", "export-now", "--job", "no-such-job")
	require.Equal(t, 2, cmd.ProcessState.ExitCode())
}
