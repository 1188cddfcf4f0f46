package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

// TestCopySQLiteToPostgres moves a used SQLite store to PostgreSQL: every
// row with its state (ControlNumbers, retry state, attempts, settings,
// pauses, runs, runtime subscriptions, tokens); a second copy adds nothing;
// new events continue the numbering; a store in use is refused.
func TestCopySQLiteToPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	src, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "eb.db"))
	require.NoError(t, err)
	defer src.Close()
	for _, m := range []string{"m1", "m2"} {
		_, err := src.CommitPackage(ctx, storetest.Package("j", m, []string{"A", "B"}, "s1", "s2"))
		require.NoError(t, err)
	}
	ds, err := src.ClaimDue(ctx, "old", "s1", t0, t0.Add(time.Minute), 2)
	require.NoError(t, err)
	_, err = src.Complete(ctx, "old",
		store.Completion{ID: ds[0].ID, Outcome: store.Outcome{State: store.StateDelivered, Status: 204, At: t0.Add(time.Second)},
			Attempt: &store.Attempt{Number: 1, StartedAt: t0, Duration: time.Second, Status: 204}},
		store.Completion{ID: ds[1].ID, Outcome: store.Outcome{State: store.StatePending, NextAt: t0.Add(time.Hour), Status: 503, Error: "HTTP 503", At: t0.Add(time.Second)}})
	require.NoError(t, err)
	require.NoError(t, src.Pause(ctx, "s2", "HTTP 410", t0))
	_, err = src.SetSettingIfAbsent(ctx, "signing_key", "k")
	require.NoError(t, err)
	id, err := src.StartRun(ctx, store.Run{Job: "j", Owner: "old", StartedAt: t0})
	require.NoError(t, err)
	require.NoError(t, src.FinishRun(ctx, store.Run{ID: id, FinishedAt: t0.Add(time.Second), Outcome: "ok", Packages: 2}))
	require.NoError(t, src.CreateSubscription(ctx, store.StoredSubscription{Name: "rt", Spec: []byte(`{"url":"http://x"}`), CreatedBy: "admin", CreatedAt: t0}))
	require.NoError(t, src.CreateToken(ctx, store.StoredToken{Name: "ci", Hash: []byte("0123456789abcdef0123456789abcdef"), Scopes: []string{"read"}, CreatedAt: t0}))

	dsn := testservice.Postgres(t)
	dst, err := store.OpenPostgres(ctx, store.Config{Driver: "postgres", DSN: dsn, MaxConns: 4})
	require.NoError(t, err)
	defer dst.Close()
	var reports []store.CopyReport
	require.NoError(t, store.Copy(ctx, src, dst, t0.Add(2*time.Minute), func(r store.CopyReport) { reports = append(reports, r) }))
	copied := map[string]int{}
	for _, r := range reports {
		copied[r.Table] = r.Copied
	}
	require.Equal(t, 4, copied["events"])
	require.Equal(t, 8, copied["deliveries"])

	for _, f := range []store.Filter{{Limit: 100}, {State: store.StatePending, Limit: 100}} {
		want, err := src.Deliveries(ctx, f)
		require.NoError(t, err)
		got, err := dst.Deliveries(ctx, f)
		require.NoError(t, err)
		require.Equal(t, want, got, "deliveries, their events and artifacts, as they were")
	}
	wantEv, err := src.EventsAfter(ctx, 0, 100)
	require.NoError(t, err)
	gotEv, err := dst.EventsAfter(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, wantEv, gotEv, "events keep their ControlNumbers")
	att, err := dst.Attempts(ctx, ds[0].ID)
	require.NoError(t, err)
	require.Len(t, att, 1)
	paused, err := dst.Paused(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"s2": "HTTP 410"}, paused)
	v, err := dst.SetSettingIfAbsent(ctx, "signing_key", "other")
	require.NoError(t, err)
	require.Equal(t, "k", v, "the signing key moved: old links still verify")
	runs, err := dst.Runs(ctx, "j", 10)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	subs, _, err := dst.StoredSubscriptions(ctx)
	require.NoError(t, err)
	require.Len(t, subs, 1)
	_, err = dst.TokenByHash(ctx, []byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	msg, err := dst.FindMessage(ctx, "j", store.MessageKeys{CorrelationID: "corr-m1"})
	require.NoError(t, err)
	require.Equal(t, "m1", msg.ID, "a message seen before stays seen")

	// Again: nothing new.
	reports = nil
	require.NoError(t, store.Copy(ctx, src, dst, t0.Add(2*time.Minute), func(r store.CopyReport) { reports = append(reports, r) }))
	for _, r := range reports {
		require.Zero(t, r.Copied, "%s copied twice", r.Table)
	}
	// New events continue after the copied numbers.
	evs, err := dst.AppendEvents(ctx, []store.NewEvent{{Event: store.Event{ID: "after-copy", Type: "T", Topic: "x", Body: []byte(`{}`), CreatedAt: t0}}}, t0)
	require.NoError(t, err)
	require.Greater(t, evs[0].ControlNumber, wantEv[len(wantEv)-1].ControlNumber)
	_, err = dst.CommitPackage(ctx, storetest.Package("j", "m3", []string{"C"}, "s1"))
	require.NoError(t, err, "new deliveries get new ids")

	// A store in use is refused.
	_, err = src.AcquireJobLease(ctx, "j", "daemon", t0.Add(2*time.Minute), t0.Add(3*time.Minute))
	require.NoError(t, err)
	require.ErrorIs(t, store.Copy(ctx, src, dst, t0.Add(2*time.Minute), nil), store.ErrSourceInUse)
}
