package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// TestSIGHUPReloadsWhatItCanAndRestartsForTheRest: a SIGHUP with a new log
// level and a new subscription applies both in place, as does one with a
// changed job; one with a changed connection drains and exits 0, naming
// what needs the restart; a config with problems is refused and the
// daemon keeps running.
func TestSIGHUPReloadsWhatItCanAndRestartsForTheRest(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{}, "")
	cfg, err := os.ReadFile(e.config)
	require.NoError(t, err)
	base := strings.Replace(string(cfg), `level = "debug"`, `level = "info"`, 1)
	require.NoError(t, os.WriteFile(e.config, []byte(base), 0o600))
	cmd, out, done := startProcess(t, "run", "--config", e.config)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "exportbridge running") }, 20*time.Second, 10*time.Millisecond)

	// A broken file: refused, still running.
	require.NoError(t, os.WriteFile(e.config, []byte(base+"\n[server]\nlisn = 1\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "still running on the previous one") }, 10*time.Second, 10*time.Millisecond)

	// The log level and a new subscription: in place.
	next := strings.Replace(base, `level = "info"`, `level = "debug"`, 1) + `
[[subscriptions]]
name = "second"
url = "` + e.sink.url + `"
secret = "` + procSecret + `"
`
	require.NoError(t, os.WriteFile(e.config, []byte(next), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"message":"configuration reloaded"`) }, 10*time.Second, 10*time.Millisecond, "%s", out)
	require.Contains(t, out.String(), `"log_level":"debug"`)

	// A job changed: in place too.
	jobChanged := strings.Replace(next, `poll_interval = "50ms"`, `poll_interval = "75ms"`, 1)
	require.NotEqual(t, next, jobChanged)
	require.NoError(t, os.WriteFile(e.config, []byte(jobChanged), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Count(out.String(), `"message":"configuration reloaded"`) == 2 }, 10*time.Second, 10*time.Millisecond, "%s", out)

	// A connection changed: drained, exit 0, naming the section.
	changed := strings.Replace(jobChanged, "[connections.finops]\n", "[connections.finops]\ntimeout = \"45s\"\n", 1)
	require.NotEqual(t, jobChanged, changed)
	require.NoError(t, os.WriteFile(e.config, []byte(changed), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	select {
	case err := <-done:
		require.NoError(t, err, "%s", out)
	case <-time.After(20 * time.Second):
		t.Fatalf("the daemon did not exit:\n%s", out)
	}
	require.Contains(t, out.String(), `"changed":["connections"]`)
	require.Contains(t, out.String(), "need a restart")
}
