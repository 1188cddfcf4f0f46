package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// downTarget is a subscription whose receiver refuses connections: its
// deliveries are retried twice, a second apart, then dead-lettered.
const downTarget = `
[[subscriptions]]
name = "down"
url = "http://127.0.0.1:1/hook"
retry = ["1s", "1s"]
breaker_threshold = -1
`

// TestExportNowShowsEveryPhaseOnATerminal runs the real binary on a
// pseudo-terminal: its live lines go through every phase of a package
// export and a dequeue, the retries against a dead target with the time
// of the next, and the failure names the command that replays it.
func TestExportNowShowsEveryPhaseOnATerminal(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{ExportPolls: 3}, downTarget)
	e.sim.EnqueueSample(procActivity)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "export-now", "--config", e.config)
	// The config says debug and JSON; an operator's default is info, which
	// a terminal shows as the live lines and the warnings above them.
	cmd.Env = append(os.Environ(), "EXPORTBRIDGE_LOG__LEVEL=info", "EXPORTBRIDGE_LOG__FORMAT=auto")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	require.NoError(t, err)
	var screen bytes.Buffer
	_, err = io.Copy(&screen, tty) // until the process closes its side (EIO)
	var pathErr interface{ Unwrap() error }
	if err != nil && !(errors.As(err, &pathErr) && errors.Is(err, syscall.EIO)) {
		require.NoError(t, err)
	}
	tty.Close()
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "export-now fails: the target is down\n%s", screen.String())
	require.Equal(t, exitFailed, exit.ExitCode())
	out := screen.String()
	for _, want := range []string{
		"starting\r\n", // from the first moment: never a blank screen
		"asking FinOps for a package",
		"starting the export",
		"waiting for FinOps: Executing (",
		"downloading ",
		"converting ",
		"committed ",
		"delivering: ",
		"\x1b[2K", // lines are rewritten in place
	} {
		require.Contains(t, out, want, "the terminal shows %q", want)
	}
	require.Regexp(t, `retrying \d+, next at \d\d:\d\d:\d\d`, out)
	require.Regexp(t, `delivering: (\d+) of (\d+) settled`, out)
	require.Contains(t, out, "to replay what failed")
	require.Regexp(t, `exportbridge deliveries replay --job (customer-groups|vendors) --since \d{4}-\d\d-\d\dT`, out)
	require.NotContains(t, out, `{"level"`, "no JSON log lines on a terminal")
	require.Contains(t, out, "WRN", "warnings (dead letters) show, above the live lines")
}

// TestExportNowLogsPhasesWithoutATerminal: the same run with its output
// in a pipe writes a log line per phase instead.
func TestExportNowLogsPhasesWithoutATerminal(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{ExportPolls: 3}, downTarget)
	e.sim.EnqueueSample(procActivity)
	_, out, err := e.run("", "export-now")
	require.Error(t, err)
	for _, want := range []string{
		`"message":"starting the export"`, `"message":"waiting for FinOps"`, `"status":"Executing"`, `"message":"downloading"`,
		`"message":"delivering, retrying"`, `"retrying":`, `"message":"settled"`,
	} {
		require.Contains(t, out, want)
	}
	require.Regexp(t, regexp.MustCompile(`"elapsed":"\d+(\.\d+)?m?s"`), out, "durations carry units")
	require.NotContains(t, out, "\x1b[", "no terminal codes in a pipe")
	require.True(t, strings.Contains(out, "exportbridge deliveries replay --job"), out)
}
