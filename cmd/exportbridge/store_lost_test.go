package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

// syncBuffer is an io.Writer safe to read while the process writes it.
type syncBuffer = testservice.Buffer

// startProcess starts the binary with args and returns it, its combined
// output and a channel that receives its exit.
func startProcess(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, out, done
}

// startDaemon runs `exportbridge run` with the dequeue job every second.
func (e *procEnv) startDaemon(t *testing.T) (*exec.Cmd, *syncBuffer, <-chan error) {
	t.Helper()
	cfg, err := os.ReadFile(e.config)
	require.NoError(t, err)
	sched := strings.Replace(string(cfg), `activity_id = "`+procActivity+`"`, `activity_id = "`+procActivity+"\"\nschedule = \"@every 1s\"", 1)
	require.NoError(t, os.WriteFile(e.config, []byte(sched), 0o600))
	return startProcess(t, "run", "--config", e.config)
}

func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDeletedDatabaseStopsTheDaemon: the database file is deleted under a
// running daemon. It acknowledges nothing more, exits with a clear error,
// and a restart refuses to create an empty database beside the converted
// files that belong to the lost one.
func TestDeletedDatabaseStopsTheDaemon(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{}, "")
	e.sim.EnqueueSample(procActivity)
	_, out, done := e.startDaemon(t)
	require.Eventually(t, func() bool { return len(e.sink.idsByEntity()) == 3 }, 20*time.Second, 20*time.Millisecond, "first package delivered:\n%s", out)

	db := filepath.Join(e.dir, "data/eb.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		_ = os.Remove(p)
	}
	e.sim.EnqueueSample(procActivity)

	select {
	case err := <-done:
		require.Error(t, err, "the daemon exits with an error so its supervisor restarts it:\n%s", out)
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon kept running on a deleted database:\n%s", out)
	}
	require.Contains(t, out.String(), "deleted or replaced while open")
	msgs := e.sim.Messages(procActivity)
	require.Len(t, msgs, 2)
	require.False(t, msgs[1].Acked, "nothing is acknowledged into a deleted database")
	require.Len(t, e.sink.idsByEntity(), 3, "nothing more published")

	// A restart does not silently start afresh beside orphaned files.
	_, rout, err := e.run("", "run")
	require.Error(t, err)
	require.Contains(t, rout, "does not exist, but")
	require.Contains(t, rout, "restore the database")
	_, err = os.Stat(db)
	require.ErrorIs(t, err, os.ErrNotExist, "no empty database created")
}

// TestReadOnlyDatabaseIsNotReady: /readyz turns red while the database file
// cannot be written, and green again when it can.
func TestReadOnlyDatabaseIsNotReady(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{}, "")
	_, out, _ := e.startDaemon(t)
	addr := boundAddr(t, out)
	require.Eventually(t, func() bool { c, _ := readyz(t, addr); return c == http.StatusOK }, 20*time.Second, 20*time.Millisecond, "%s", out)
	db := filepath.Join(e.dir, "data/eb.db")
	require.NoError(t, os.Chmod(db, 0o444))
	code, body := readyz(t, addr)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "read-only")
	require.NoError(t, os.Chmod(db, 0o644))
	code, body = readyz(t, addr)
	require.Equal(t, http.StatusOK, code, body)
}
