package adapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

func keyedChanges(c *Config) {
	c.Jobs[0].Changes = map[string][]string{"Customer groups": {"CUSTOMERGROUPID"}, "Currencies": {"CURRENCYCODE"}}
}

// received returns the deliveries of events of type typ, by entity.
func (r *testReceiver) received(typ string) map[string][]delivery {
	out := map[string][]delivery{}
	for _, d := range r.deliveries() {
		if d.Body["BusinessEventId"] == typ {
			entity, _ := d.Body["EntityName"].(string)
			out[entity] = append(out[entity], d)
		}
	}
	return out
}

// changeLine is one line of a changes file.
type changeLine struct {
	Op     string            `json:"op"`
	Key    map[string]string `json:"key"`
	Row    map[string]string `json:"row"`
	Before map[string]any    `json:"before"`
}

func changeLines(t *testing.T, file []byte) map[string]changeLine {
	t.Helper()
	out := map[string]changeLine{}
	sc := bufio.NewScanner(bytes.NewReader(file))
	for sc.Scan() {
		var c changeLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c), "each line is JSON: %s", sc.Text())
		out[c.Key["CUSTOMERGROUPID"]] = c
	}
	return out
}

// rowsByKey is the entity's rows as the converter writes them (CSV: a
// quoted CRLF is LF).
func rowsByKey(e finopssim.Entity) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range e.Rows {
		row := map[string]string{}
		for j, col := range e.Columns {
			row[col] = strings.ReplaceAll(r[j], "\r\n", "\n")
		}
		out[r[0]] = row
	}
	return out
}

// TestTwoSnapshotsDeliverTheirChanges: the simulator's successive packages
// are successive snapshots; the first becomes the baseline silently, the
// second's DataExportChanged carries the counts and the EventIds of both
// snapshots, and its changes file lists exactly the rows that differ,
// with the changed fields' values before.
func TestTwoSnapshotsDeliverTheirChanges(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{Rows: 6}, keyedChanges)
	p1, _ := e.sim.EnqueueSample(testActivity)
	require.NoError(t, e.exportNow("customer-groups"))
	require.Empty(t, e.rcv.received(dataexport.TypeChanged), "the first snapshot is only the baseline")
	p2, _ := e.sim.EnqueueSample(testActivity)
	require.NoError(t, e.exportNow("customer-groups"))

	changed := e.rcv.received(dataexport.TypeChanged)
	require.Len(t, changed, 2, "one per keyed entity: %v", changed)
	require.NotContains(t, changed, "Vendor groups", "no key columns, no change event")
	cg := changed["Customer groups"]
	require.Len(t, cg, 1)
	body := cg[0].Body

	before, after := rowsByKey(p1.Entities[0]), rowsByKey(p2.Entities[0])
	lines := changeLines(t, cg[0].File)
	var ins, upd, del int
	for id, row := range after {
		old, ok := before[id]
		switch {
		case !ok:
			ins++
			require.Equal(t, "insert", lines[id].Op, id)
			require.Equal(t, row, lines[id].Row)
		case !maps.Equal(old, row):
			upd++
			require.Equal(t, "update", lines[id].Op, id)
			require.Equal(t, row, lines[id].Row)
			require.Equal(t, map[string]any{"DESCRIPTION": old["DESCRIPTION"]}, lines[id].Before, "only the changed field, as it was")
		default:
			require.NotContains(t, lines, id, "an unchanged row is not listed")
		}
	}
	for id, old := range before {
		if _, ok := after[id]; !ok {
			del++
			require.Equal(t, "delete", lines[id].Op, id)
			require.Nil(t, lines[id].Row)
			require.Equal(t, len(old), len(lines[id].Before), "a deleted row's values before")
		}
	}
	require.Len(t, lines, ins+upd+del, "nothing else is listed")
	require.Equal(t, 1, ins)
	require.Equal(t, 1, del)
	require.Positive(t, upd)
	require.Equal(t, []any{float64(ins), float64(upd), float64(del)}, []any{body["Inserted"], body["Updated"], body["Deleted"]})

	completed := e.rcv.received(dataexport.TypeCompleted)["Customer groups"]
	require.Len(t, completed, 2)
	require.Equal(t, completed[1].ID, body["SnapshotEventId"])
	require.Equal(t, completed[0].ID, body["PreviousSnapshotEventId"])
	require.Equal(t, "application/x-ndjson", body["ContentType"])
	require.Positive(t, body["ControlNumber"])
}

// TestADuplicateKeyFailsOnlyTheChangeEvent: a snapshot with a duplicate
// key still gets its DataExportCompleted; its change event is a
// DataExportFailed (changes_failed) naming the key and both lines; the
// baseline stays, so the next good snapshot is compared with the last
// good one.
func TestADuplicateKeyFailsOnlyTheChangeEvent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{Rows: 6}, keyedChanges)
	e.sim.EnqueueSample(testActivity) // the baseline
	require.NoError(t, e.exportNow("customer-groups"))
	bad := finopssim.SamplePackage("Recurring export", 6, 2)
	bad.Entities[0].Rows = append(bad.Entities[0].Rows, bad.Entities[0].Rows[1])
	e.sim.Enqueue(testActivity, bad.Zip())
	require.Error(t, e.exportNow("customer-groups"), "export-now reports the failed change event")

	require.Len(t, e.rcv.received(dataexport.TypeCompleted)["Customer groups"], 2, "the snapshot itself went out")
	failed := e.rcv.received(dataexport.TypeFailed)["Customer groups"]
	require.Len(t, failed, 1)
	require.Equal(t, string(dataexport.Reason("changes_failed")), failed[0].Body["FailureReason"])
	msg := failed[0].Body["FailureMessage"].(string)
	require.Contains(t, msg, `{"CUSTOMERGROUPID":"`+bad.Entities[0].Rows[1][0]+`"}`)
	require.Contains(t, msg, "line 3 and on line 8", "both lines of the converted file")
	require.Len(t, e.rcv.received(dataexport.TypeChanged)["Currencies"], 1, "the other entity compared fine")

	p3 := finopssim.SamplePackage("Recurring export", 6, 3)
	e.sim.Enqueue(testActivity, p3.Zip())
	require.NoError(t, e.exportNow("customer-groups"))
	cg := e.rcv.received(dataexport.TypeChanged)["Customer groups"]
	require.Len(t, cg, 1)
	completed := e.rcv.received(dataexport.TypeCompleted)["Customer groups"]
	require.Equal(t, completed[0].ID, cg[0].Body["PreviousSnapshotEventId"], "compared with the last good snapshot")
}

// TestInitialInsertsAndEmptyEvents: changes_initial = "inserts" announces
// the first snapshot as all inserts; changes_empty_event announces a
// snapshot that changed nothing.
func TestInitialInsertsAndEmptyEvents(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, finopssim.Config{Rows: 6}, func(c *Config) {
		keyedChanges(c)
		c.Jobs[0].ChangesInitial, c.Jobs[0].ChangesEmptyEvent = "inserts", true
	})
	p := finopssim.SamplePackage("Recurring export", 6, 1)
	e.sim.Enqueue(testActivity, p.Zip())
	require.NoError(t, e.exportNow("customer-groups"))
	first := e.rcv.received(dataexport.TypeChanged)["Customer groups"]
	require.Len(t, first, 1)
	require.Equal(t, float64(6), first[0].Body["Inserted"])
	require.Empty(t, first[0].Body["PreviousSnapshotEventId"])
	require.Len(t, changeLines(t, first[0].File), 6)

	// The same rows again, in another package: nothing changed, announced.
	again := finopssim.SamplePackage("Recurring export", 6, 1)
	again.DefinitionGroup = "Recurring export (again)" // other bytes, same rows: not a redelivery
	e.sim.Enqueue(testActivity, again.Zip())
	require.NoError(t, e.exportNow("customer-groups"))
	all := e.rcv.received(dataexport.TypeChanged)["Customer groups"]
	require.Len(t, all, 2)
	empty := all[1].Body
	require.Equal(t, []any{0.0, 0.0, 0.0}, []any{empty["Inserted"], empty["Updated"], empty["Deleted"]})
	require.Equal(t, 0.0, empty["NoOfRecords"])
}

// TestSupersededSnapshotsAreNotSent: for a subscription with supersede, a
// newer snapshot of an entity supersedes the older one still waiting (the
// subscription was paused: its target was down); once resumed, only the
// newer snapshot goes out. Other subscriptions get both.
func TestSupersededSnapshotsAreNotSent(t *testing.T) {
	t.Parallel()
	latest := newTestReceiver(t)
	e := newTestEnv(t, finopssim.Config{Rows: 6}, func(c *Config) {
		c.Subscriptions = append(c.Subscriptions, publish.SubscriptionConfig{Name: "latest", URL: latest.url, Secret: []string{testSecret},
			Entities: []string{"Customer groups"}, Supersede: true})
	})
	a := startDaemon(t, e)
	ctx := context.Background()
	require.NoError(t, a.Pub.Pause(ctx, "latest", "target down for maintenance"))
	for range 2 {
		e.sim.EnqueueSample(testActivity)
		_, err := a.Runner.Run(ctx, "customer-groups", nil)
		require.NoError(t, err)
	}
	ds, err := a.Store.Deliveries(ctx, store.Filter{Subscription: "latest"})
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.Equal(t, store.StatePending, ds[0].State, "the newer snapshot waits")
	require.Equal(t, store.StateSuperseded, ds[1].State, "the older one is superseded")
	newer := ds[0].Event.ID

	require.NoError(t, a.Pub.Resume(ctx, "latest"))
	require.Eventually(t, func() bool { return len(latest.deliveries()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Never(t, func() bool { return len(latest.deliveries()) > 1 }, 300*time.Millisecond, 20*time.Millisecond, "the older snapshot is never sent")
	require.Equal(t, newer, latest.deliveries()[0].ID)
	require.Eventually(t, func() bool { return len(e.rcv.received(dataexport.TypeCompleted)["Customer groups"]) == 2 }, 10*time.Second, 10*time.Millisecond,
		"a subscription without supersede gets both")
	var count map[string]int
	require.Equal(t, http.StatusOK, call(t, e, "GET", "/api/deliveries/count?state=superseded", "test-admin-token", &count))
	require.Equal(t, 1, count["count"])
	_, metrics := get(t, "http://"+e.cfg.Server.Listen+"/metrics")
	require.Contains(t, metrics, `exportbridge_deliveries{state="superseded"} 1`)
}
