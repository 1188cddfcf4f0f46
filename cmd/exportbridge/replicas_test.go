package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
)

// TestTwoDaemonsOnOneStoreBehaveAsOne starts two `exportbridge run` on one
// SQLite store at the same moment (different listen ports), with both jobs
// every second, and SIGKILLs one of them while it has a delivery in flight
// (the receiver holds every request until then).
// Every export is started once, every (message, entity) is delivered under
// one EventId, nothing stays pending or in flight, and the survivor takes
// over the dead one's leases once they expire.
func TestTwoDaemonsOnOneStoreBehaveAsOne(t *testing.T) {
	t.Parallel()
	e := newProcEnv(t, finopssim.Config{ExportPolls: 1, VisibilityTimeout: 300 * time.Millisecond}, "")
	cfg, err := os.ReadFile(e.config)
	require.NoError(t, err)
	text := strings.Replace(string(cfg), `activity_id = "`+procActivity+`"`, `activity_id = "`+procActivity+"\"\nschedule = \"@every 1s\"", 1)
	text = strings.Replace(text, `definition_group = "Vendors export"`, "definition_group = \"Vendors export\"\nschedule = \"@every 1s\"", 1)
	require.NoError(t, os.WriteFile(e.config, []byte(text), 0o600))
	// Both listen on port 0: each binds its own free port.

	const messages = 6
	for range messages {
		e.sim.EnqueueSample(procActivity)
	}
	// Deliveries stay in flight until A is dead: one A holds cannot finish
	// between being seen and the kill, so B must rescue it.
	release := e.sink.hold()

	a, outA, doneA := startProcess(t, "run", "--config", e.config)
	b, outB, doneB := startProcess(t, "run", "--config", e.config)

	// Wait until A holds a delivery in flight, then kill it.
	db := filepath.Join(e.dir, "data/eb.db")
	aOwner := fmt.Sprintf("/%d/", a.Process.Pid)
	var killedLeases []int64
	require.Eventually(t, func() bool {
		st, err := store.OpenSQLite(context.Background(), db)
		if err != nil {
			return false
		}
		defer st.Close()
		ds, err := st.Deliveries(context.Background(), store.Filter{State: store.StateInFlight, Limit: 1000})
		if err != nil {
			return false
		}
		for _, d := range ds {
			if strings.Contains(d.LeaseOwner, aOwner) {
				killedLeases = append(killedLeases, d.ID)
			}
		}
		return len(killedLeases) > 0
	}, 30*time.Second, 20*time.Millisecond, "daemon A never had a delivery in flight:\nA:\n%s\nB:\n%s", outA, outB)
	require.NoError(t, a.Process.Signal(syscall.SIGKILL))
	<-doneA
	release()

	// The survivor finishes everything: every message acknowledged, every
	// delivery made, nothing pending or in flight.
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, why := finished(e, db, aOwner, killedLeases)
		if !e.sink.hasKind("package-export") {
			done, why = false, why+"no export delivered yet; "
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the survivor did not finish: %s\nB:\n%s", why, outB)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-doneB:
		t.Fatalf("daemon B stopped: %v\n%s", err, outB)
	default:
	}

	execs := e.sim.Executions()
	require.NotEmpty(t, execs)
	require.Equal(t, len(execs), e.sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage"),
		"no export started twice")
	ids := e.sink.idsByEntity()
	seen := 0
	for ent, set := range ids {
		require.Len(t, set, 1, "%s delivered under %d EventIds", ent, len(set))
		seen++
	}
	require.GreaterOrEqual(t, seen, 3*messages, "every entity of every message (and of the exports) delivered")
	// The survivor took the dead one's leases over: it logged the rescue.
	require.Contains(t, outB.String(), "returned deliveries with expired leases to pending")
	require.NotEqual(t, a.Process.Pid, b.Process.Pid)
}

// finished reports whether everything was acknowledged and delivered, and
// what is not.
func finished(e *procEnv, db, deadOwner string, deadLeases []int64) (bool, string) {
	var b strings.Builder
	for _, m := range e.sim.Messages(procActivity) {
		if !m.Acked {
			fmt.Fprintf(&b, "message %s not acknowledged (%d dequeues); ", m.CorrelationID, m.Dequeues)
		}
	}
	st, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		return false, err.Error()
	}
	defer st.Close()
	c, err := st.Counts(context.Background())
	if err != nil {
		return false, err.Error()
	}
	if c[store.StatePending]+c[store.StateInFlight] > 0 {
		fmt.Fprintf(&b, "counts %v; ", c)
	}
	for _, id := range deadLeases {
		ds, err := st.Deliveries(context.Background(), store.Filter{ID: id})
		if err != nil || len(ds) != 1 {
			fmt.Fprintf(&b, "delivery %d: %v; ", id, err)
			continue
		}
		if d := ds[0]; d.State != store.StateDelivered || strings.Contains(d.LeaseOwner, deadOwner) {
			fmt.Fprintf(&b, "delivery %d %s owner %s attempt %d; ", d.ID, d.State, d.LeaseOwner, d.Attempt)
		}
	}
	return b.Len() == 0, b.String()
}
