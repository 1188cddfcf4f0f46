package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/fault/faulttest"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// TestFullFilesystemLosesNothing runs the real binary with files.dir on a
// 256 KiB tmpfs (in a private mount namespace) that the converted package
// does not fit on: export-now exits 1 naming the job and the device error,
// nothing is quarantined, published or acknowledged. Run again with room, the
// redelivered message is delivered.
func TestFullFilesystemLosesNothing(t *testing.T) {
	t.Parallel()
	if err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs -o size=64k tmpfs /mnt").Run(); err != nil {
		faulttest.Unavailable(t, "cannot mount a tmpfs in a private mount namespace here (needs root or CAP_SYS_ADMIN): %v", err)
	}
	e := newProcEnv(t, finopssim.Config{Rows: 4000, VisibilityTimeout: 200 * time.Millisecond}, "")
	e.sim.EnqueueSample(procActivity)
	filesDir := filepath.Join(e.dir, "data/files")
	require.NoError(t, os.MkdirAll(filesDir, 0o755))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=256k tmpfs "$1" && shift && exec "$@"`, "sh", filesDir,
		binary, "export-now", "--job", "customer-groups", "--config", e.config)
	cmd.Env = append(os.Environ(), adapter.FailpointEnv+"=")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
	require.Contains(t, string(out), "no space left on device")
	require.Contains(t, string(out), "customer-groups")

	q, _ := os.ReadDir(filepath.Join(e.dir, "data/quarantine"))
	require.Empty(t, q, "a full disk quarantines nothing")
	require.Empty(t, e.sink.idsByEntity(), "nothing published")
	for _, m := range e.sim.Messages(procActivity) {
		require.False(t, m.Acked, "the message stays in FinOps's queue")
	}

	// With room (no tmpfs), the message comes back and is delivered.
	require.Eventually(t, func() bool {
		_, out, err := e.run("", "export-now", "--job", "customer-groups")
		return err == nil && strings.Contains(out, "1 package(s)")
	}, 30*time.Second, 250*time.Millisecond)
	require.Len(t, e.sink.idsByEntity(), 3)
	e.sink.mu.Lock()
	for _, ev := range e.sink.got {
		require.NotEqual(t, dataexport.TypeFailed, ev["BusinessEventId"], "no DataExportFailed for a full disk")
	}
	e.sink.mu.Unlock()
	for _, m := range e.sim.Messages(procActivity) {
		require.True(t, m.Acked)
	}
}
