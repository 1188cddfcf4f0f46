package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

// TestThreeReplicasOnPostgresBehaveAsOne runs three `exportbridge run` on
// one PostgreSQL database and one S3 bucket, both jobs every second and
// a burst of packages, and SIGKILLs one replica while it runs a job and
// another while it delivers. Then every export was started once, every
// (message, entity) was delivered under one EventId, nothing is left
// pending or in flight, and every delivered link (presigned, whichever
// replica minted it) downloads from the bucket a file whose SHA-256
// matches the event.
func TestThreeReplicasOnPostgresBehaveAsOne(t *testing.T) {
	t.Parallel()
	dsn := testservice.Postgres(t)
	s3, bucket := testservice.S3(t)
	e := newProcEnv(t, finopssim.Config{ExportPolls: 1, VisibilityTimeout: 300 * time.Millisecond}, "")
	cfg, err := os.ReadFile(e.config)
	require.NoError(t, err)
	text := strings.Replace(string(cfg), `activity_id = "`+procActivity+`"`, `activity_id = "`+procActivity+"\"\nschedule = \"@every 1s\"", 1)
	text = strings.Replace(text, `definition_group = "Vendors export"`, "definition_group = \"Vendors export\"\nschedule = \"@every 1s\"", 1)
	text = strings.Replace(text, "[store]\n", "[store]\ndriver = \"postgres\"\nmax_conns = 4\n", 1)
	text = replaceLine(text, "dsn = ", fmt.Sprintf("dsn = %q", dsn))
	text = strings.Replace(text, "[files]\n", fmt.Sprintf("[files]\ndriver = \"s3\"\ns3 = { bucket = %q, endpoint = %q, path_style = true, access_key_id = %q, secret_access_key = %q }\n",
		bucket, s3.Endpoint, s3.AccessKey, s3.SecretKey), 1)
	require.NoError(t, os.WriteFile(e.config, []byte(text), 0o600))

	const messages = 9
	for range messages {
		e.sim.EnqueueSample(procActivity)
	}
	e.sink.delay.Store(int64(200 * time.Millisecond)) // keeps deliveries in flight for a while

	type replica struct {
		cmd  *exec.Cmd
		out  *syncBuffer
		done <-chan error
		tag  string // how its owner id names it: "/<pid>/"
	}
	var rs []replica
	for range 3 {
		c, out, done := startProcess(t, "run", "--config", e.config)
		rs = append(rs, replica{cmd: c, out: out, done: done, tag: fmt.Sprintf("/%d/", c.Process.Pid)})
	}
	open := func() (store.Store, error) {
		return store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 2})
	}
	st, err := open()
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	killed := map[int]bool{}
	kill := func(what string, holds func(tag string) bool) {
		t.Helper()
		victim := -1
		require.Eventually(t, func() bool {
			for i, r := range rs {
				if !killed[i] && holds(r.tag) {
					victim = i
					return true
				}
			}
			return false
		}, 30*time.Second, 5*time.Millisecond, "no replica was ever seen %s", what)
		require.NoError(t, rs[victim].cmd.Process.Signal(syscall.SIGKILL))
		<-rs[victim].done
		killed[victim] = true
	}
	kill("running a job", func(tag string) bool {
		leases, err := st.JobLeases(ctx, time.Now())
		if err != nil {
			return false
		}
		for _, l := range leases {
			if strings.Contains(l.Owner, tag) {
				return true
			}
		}
		return false
	})
	kill("delivering", func(tag string) bool {
		ds, err := st.Deliveries(ctx, store.Filter{State: store.StateInFlight, Limit: 1000})
		if err != nil {
			return false
		}
		for _, d := range ds {
			if strings.Contains(d.LeaseOwner, tag) {
				return true
			}
		}
		return false
	})
	e.sink.delay.Store(0)
	var survivor replica
	for i, r := range rs {
		if !killed[i] {
			survivor = r
		}
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		var why strings.Builder
		for _, m := range e.sim.Messages(procActivity) {
			if !m.Acked {
				fmt.Fprintf(&why, "message %s not acknowledged; ", m.CorrelationID)
			}
		}
		c, err := st.Counts(ctx)
		require.NoError(t, err)
		if c[store.StatePending]+c[store.StateInFlight] > 0 {
			fmt.Fprintf(&why, "counts %v; ", c)
		}
		if !e.sink.hasKind("package-export") {
			why.WriteString("no export delivered yet; ")
		}
		if why.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the survivor did not finish: %s\nsurvivor:\n%s", why.String(), survivor.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-survivor.done:
		t.Fatalf("the survivor stopped: %v\n%s", err, survivor.out)
	default:
	}

	execs := e.sim.Executions()
	require.NotEmpty(t, execs)
	require.Equal(t, len(execs), e.sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage"),
		"no export started twice")
	seen := 0
	for ent, set := range e.sink.idsByEntity() {
		require.Len(t, set, 1, "%s delivered under %d EventIds", ent, len(set))
		seen++
	}
	require.GreaterOrEqual(t, seen, 3*messages, "every entity of every message (and of the exports) delivered")

	// Every link downloads from the bucket and verifies.
	e.sink.mu.Lock()
	got := append([]map[string]any(nil), e.sink.got...)
	e.sink.mu.Unlock()
	verified := 0
	for _, ev := range got {
		link, _ := ev["DownloadURL"].(string)
		if link == "" {
			continue
		}
		require.True(t, strings.HasPrefix(link, s3.Endpoint+"/"+bucket+"/"), "a presigned link to the bucket")
		resp, err := http.Get(link)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		sum := sha256.Sum256(body)
		require.Equal(t, ev["ContentSHA256"], hex.EncodeToString(sum[:]))
		verified++
	}
	require.GreaterOrEqual(t, verified, 3*messages)
}

// hasKind reports whether an event of a job of kind arrived.
func (s *sink) hasKind(kind string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.got {
		if ev["SourceKind"] == kind {
			return true
		}
	}
	return false
}

// replaceLine replaces the first line starting with prefix.
func replaceLine(text, prefix, line string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = line
			break
		}
	}
	return strings.Join(lines, "\n")
}
