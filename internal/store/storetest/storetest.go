// Package storetest is the conformance suite every store.Store
// implementation must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/store"
)

// Opener prepares a new, empty database for one test and returns a function
// that opens a handle on it. Each call opens another handle, as another
// process on the same database would: the races between processes are
// tested across two handles, never on one (whose own locks would hide them).
type Opener func(t *testing.T) func() store.Store

// Owners of delivery leases: two process instances.
const (
	ownerA = "instance-a"
	ownerB = "instance-b"
)

var t0 = time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)

// Package builds a committed-package fixture: one artifact and event per
// entity, delivered to subs.
func Package(job, msgID string, entities []string, subs ...string) store.Package {
	p := store.Package{Job: job, MessageID: msgID, Keys: store.MessageKeys{CorrelationID: "corr-" + msgID, BlobID: "blob-" + msgID, ContentSHA256: "sha-" + msgID}, At: t0}
	for i, e := range entities {
		aid := fmt.Sprintf("art-%s-%d", msgID, i)
		p.Artifacts = append(p.Artifacts, store.Artifact{ID: aid, Job: job, Entity: e, Name: e + ".json", Key: aid + "/" + e + ".json", ContentType: "application/json", Bytes: 10, SHA256: "ab", Records: 1, CreatedAt: t0})
		p.Events = append(p.Events, store.NewEvent{Event: store.Event{ID: fmt.Sprintf("ev-%s-%d", msgID, i), Type: "DataExportCompleted",
			CEType: "com.exportbridge.test.completed", Source: "/test/" + job, Subject: e,
			Topic: "dataexport/" + job + "/" + e, Job: job, Entity: e, Body: []byte(`{"EntityName":"` + e + `"}`), ArtifactID: aid, CreatedAt: t0}, Subscriptions: subs})
	}
	return p
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(*testing.T, store.Store, func() store.Store){
		"CommitAndFindByEveryKey":      testCommitAndFind,
		"DuplicateCommitWritesNothing": testDuplicate,
		"ControlNumbersIncrease":       testControlNumbers,
		"ClaimDue":                     testClaimDue,
		"Release":                      testRelease,
		"AppendEventsOnce":             testAppendEventsOnce,
		"EventsAfter":                  testEventsAfter,
		"ReadersNeverMissACommit":      testReadersNeverMiss,
		"StoredSubscriptions":          testStoredSubscriptions,
		"AttemptsAreRecorded":          testAttempts,
		"Tokens":                       testTokens,
		"Sessions":                     testSessions,
		"Comparisons":                  testComparisons,
		"Supersede":                    testSupersede,
		"TraceParentRoundTrips":        testTraceParent,
		"CompleteOutcomes":             testComplete,
		"RescueExpiredLeases":          testRescue,
		"ReplayKeepsEventID":           testReplay,
		"FilterAndPage":                testFilterAndPage,
		"ConcurrentClaimsNeverShare":   testConcurrentClaims,
		"LeasesAcrossProcesses":        testLeasesAcrossProcesses,
		"OneJobLeaseHolderAtATime":     testOneJobLeaseHolder,
		"JobLeaseTakeoverFencesWrites": testJobLeaseFencing,
		"RunHistory":                   testRunHistory,
		"AppendEventsWithoutAMessage":  testAppendEvents,
		"Exports":                      testExports,
		"Artifacts":                    testArtifacts,
		"SettingsAndPauses":            testSettingsAndPauses,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			newHandle := open(t)
			another := func() store.Store {
				s := newHandle()
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			fn(t, another(), another)
		})
	}
}

var ctx = context.Background()

func testCommitAndFind(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.FindMessage(ctx, "j", store.MessageKeys{CorrelationID: "corr-m1"})
	require.ErrorIs(t, err, store.ErrNotFound)
	evs, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B"}, "s1", "s2"))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	for _, k := range []store.MessageKeys{{CorrelationID: "corr-m1"}, {BlobID: "blob-m1"}, {ContentSHA256: "sha-m1"}, {CorrelationID: "other", BlobID: "blob-m1"}} {
		m, err := s.FindMessage(ctx, "j", k)
		require.NoError(t, err, "%+v", k)
		require.Equal(t, "m1", m.ID)
		require.True(t, m.Acked.IsZero())
	}
	_, err = s.FindMessage(ctx, "other-job", store.MessageKeys{CorrelationID: "corr-m1"})
	require.ErrorIs(t, err, store.ErrNotFound, "keys are per job")
	_, err = s.FindMessage(ctx, "j", store.MessageKeys{})
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.MarkAcked(ctx, "j", "m1", t0.Add(time.Second)))
	m, err := s.FindMessage(ctx, "j", store.MessageKeys{BlobID: "blob-m1"})
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Second), m.Acked)
	require.ErrorIs(t, s.MarkAcked(ctx, "j", "nope", t0), store.ErrNotFound)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, counts[store.StatePending])
}

func testDuplicate(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A"}, "s1"))
	require.NoError(t, err)
	p := Package("j", "m1", []string{"A"}, "s1")
	p.Events[0].ID = "ev-other" // a different event would be written if the check came late
	p.Artifacts[0].ID = "art-other"
	p.Events[0].ArtifactID = "art-other"
	_, err = s.CommitPackage(ctx, p)
	require.ErrorIs(t, err, store.ErrDuplicate)
	ds, err := s.Deliveries(ctx, store.Filter{})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	_, err = s.Artifact(ctx, "art-other")
	require.ErrorIs(t, err, store.ErrNotFound, "the duplicate commit wrote nothing")
}

func testControlNumbers(t *testing.T, s store.Store, _ func() store.Store) {
	var last int64
	for i := range 3 {
		evs, err := s.CommitPackage(ctx, Package("j", fmt.Sprintf("m%d", i), []string{"A", "B"}, "s1"))
		require.NoError(t, err)
		for _, e := range evs {
			require.Greater(t, e.ControlNumber, last)
			last = e.ControlNumber
		}
	}
}

func testClaimDue(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B", "C"}, "s1", "s2"))
	require.NoError(t, err)
	lease := t0.Add(time.Minute)
	got, err := s.ClaimDue(ctx, ownerA, "s1", t0.Add(-time.Second), lease, 10)
	require.NoError(t, err)
	require.Empty(t, got, "not due before next_attempt_at")
	got, err = s.ClaimDue(ctx, ownerA, "s1", t0, lease, 2)
	require.NoError(t, err)
	require.Len(t, got, 2, "limit")
	for _, d := range got {
		require.Equal(t, "s1", d.Subscription)
		require.Equal(t, store.StateInFlight, d.State)
		require.Equal(t, 1, d.Attempt)
		require.Equal(t, lease, d.LeaseUntil)
		require.NotEmpty(t, d.Event.ID)
		require.NotZero(t, d.Event.ControlNumber)
		require.NotNil(t, d.Artifact)
		require.Equal(t, d.Event.ArtifactID, d.Artifact.ID)
		require.Equal(t, d.Event.Entity+".json", d.Artifact.Name)
		require.JSONEq(t, `{"EntityName":"`+d.Event.Entity+`"}`, string(d.Event.Body))
		require.Equal(t, "com.exportbridge.test.completed", d.Event.CEType)
		require.Equal(t, "/test/j", d.Event.Source)
		require.Equal(t, d.Event.Entity, d.Event.Subject)
	}
	rest, err := s.ClaimDue(ctx, ownerA, "s1", t0, lease, 10)
	require.NoError(t, err)
	require.Len(t, rest, 1, "claimed rows are not claimed again")
	other, err := s.ClaimDue(ctx, ownerA, "s2", t0, lease, 10)
	require.NoError(t, err)
	require.Len(t, other, 3, "subscriptions are independent")
}

func raised(id, topic string) store.NewEvent {
	return store.NewEvent{Event: store.Event{ID: id, Type: "Raised", CEType: "com.exportbridge.event", Source: "/exportbridge/events", Subject: topic,
		Topic: topic, Body: []byte(`{"id":"` + id + `"}`), CreatedAt: t0}, Subscriptions: []string{"s1"}}
}

func testAppendEventsOnce(t *testing.T, s store.Store, other func() store.Store) {
	key := store.IdempotencyKey{Principal: "agent", Key: "k1", Since: t0.Add(-24 * time.Hour)}
	first, replayed, err := s.AppendEventsOnce(ctx, key, []store.NewEvent{raised("r1", "a/b"), raised("r2", "a/c")}, t0)
	require.NoError(t, err)
	require.False(t, replayed)
	require.Len(t, first, 2)
	again, replayed, err := other().AppendEventsOnce(ctx, key, []store.NewEvent{raised("r3", "a/b")}, t0.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, replayed, "the same key from the same principal")
	require.Equal(t, []string{"r1", "r2"}, []string{again[0].ID, again[1].ID})
	require.Equal(t, first[1].ControlNumber, again[1].ControlNumber)
	require.Equal(t, "a/c", again[1].Topic)
	evs, err := s.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2, "a replayed key stores nothing")

	_, replayed, err = s.AppendEventsOnce(ctx, store.IdempotencyKey{Principal: "other", Key: "k1", Since: key.Since}, []store.NewEvent{raised("r4", "a")}, t0)
	require.NoError(t, err)
	require.False(t, replayed, "keys are per principal")
	later := store.IdempotencyKey{Principal: "agent", Key: "k1", Since: t0.Add(time.Minute)}
	_, replayed, err = s.AppendEventsOnce(ctx, later, []store.NewEvent{raised("r5", "a")}, t0.Add(25*time.Hour))
	require.NoError(t, err)
	require.False(t, replayed, "a key older than the window is forgotten")

	// Two processes racing with one new key store once.
	var wg sync.WaitGroup
	results := make([]bool, 2)
	for i, h := range []store.Store{s, other()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, rep, err := h.AppendEventsOnce(ctx, store.IdempotencyKey{Principal: "agent", Key: "race", Since: key.Since},
				[]store.NewEvent{raised(fmt.Sprintf("race-%d", i), "a")}, t0)
			require.NoError(t, err)
			results[i] = rep
		}()
	}
	wg.Wait()
	require.ElementsMatch(t, []bool{false, true}, results, "one stores, the other replays")

	n, err := s.SweepIdempotencyKeys(ctx, t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 2, n, "other/k1 and agent/race, used at t0, are swept; agent/k1 was used again at t0+25h")
}

func testTokens(t *testing.T, s store.Store, other func() store.Store) {
	hash := []byte("0123456789abcdef0123456789abcdef")
	require.NoError(t, s.CreateToken(ctx, store.StoredToken{Name: "ci", Hash: hash, Scopes: []string{"publish:builds"}, CreatedBy: "admin", CreatedAt: t0}))
	require.ErrorIs(t, other().CreateToken(ctx, store.StoredToken{Name: "ci", Hash: []byte("x"), Scopes: []string{"read"}, CreatedAt: t0}), store.ErrExists)
	got, err := other().TokenByHash(ctx, hash)
	require.NoError(t, err)
	require.Equal(t, store.StoredToken{Name: "ci", Hash: hash, Scopes: []string{"publish:builds"}, CreatedBy: "admin", CreatedAt: t0}, got)
	_, err = s.TokenByHash(ctx, []byte("nope"))
	require.ErrorIs(t, err, store.ErrNotFound)
	all, err := s.Tokens(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.NoError(t, s.DeleteToken(ctx, "ci"))
	require.ErrorIs(t, s.DeleteToken(ctx, "ci"), store.ErrNotFound)
	_, err = other().TokenByHash(ctx, hash)
	require.ErrorIs(t, err, store.ErrNotFound, "a deleted token authenticates nobody, in any process")
}

// testSessions: a session is found by its hash from another handle until
// it expires or is deleted; expired ones are swept.
func testSessions(t *testing.T, s store.Store, other func() store.Store) {
	live := store.Session{Hash: []byte("live-hash"), TokenHash: []byte("token-hash"), CSRF: "csrf-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	old := store.Session{Hash: []byte("old-hash"), TokenHash: []byte("token-hash"), CSRF: "csrf-2", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	require.NoError(t, s.CreateSession(ctx, live))
	require.NoError(t, s.CreateSession(ctx, old))
	got, err := other().SessionByHash(ctx, live.Hash, t0.Add(30*time.Minute))
	require.NoError(t, err)
	require.Equal(t, live.TokenHash, got.TokenHash)
	require.Equal(t, "csrf-1", got.CSRF)
	require.True(t, got.ExpiresAt.Equal(live.ExpiresAt))
	_, err = s.SessionByHash(ctx, old.Hash, t0.Add(30*time.Minute))
	require.ErrorIs(t, err, store.ErrNotFound, "expired")
	_, err = s.SessionByHash(ctx, []byte("nobody"), t0)
	require.ErrorIs(t, err, store.ErrNotFound)
	n, err := s.SweepSessions(ctx, t0.Add(30*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the expired session")
	require.NoError(t, s.DeleteSession(ctx, live.Hash))
	require.NoError(t, s.DeleteSession(ctx, live.Hash), "logging out twice")
	_, err = s.SessionByHash(ctx, live.Hash, t0)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testAttempts(t *testing.T, s store.Store, other func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A"}, "s1"))
	require.NoError(t, err)
	ds, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	id := ds[0].ID
	first := &store.Attempt{Number: 1, StartedAt: t0, Duration: 1500 * time.Millisecond, Status: 503, Error: "HTTP 503: busy", Response: "busy"}
	_, err = s.Complete(ctx, ownerA, store.Completion{ID: id, Outcome: store.Outcome{State: store.StatePending, NextAt: t0, At: t0.Add(2 * time.Second)}, Attempt: first})
	require.NoError(t, err)
	ds, err = other().ClaimDue(ctx, ownerB, "s1", t0.Add(3*time.Second), t0.Add(time.Minute), 10)
	require.NoError(t, err)
	second := &store.Attempt{Number: 2, StartedAt: t0.Add(3 * time.Second), Duration: 20 * time.Millisecond, Status: 204}
	_, err = other().Complete(ctx, ownerB, store.Completion{ID: id, Outcome: store.Outcome{State: store.StateDelivered, At: t0.Add(4 * time.Second)}, Attempt: second})
	require.NoError(t, err)
	// A stale completion's attempt happened all the same.
	stale, err := s.Complete(ctx, ownerA, store.Completion{ID: id, Outcome: store.Outcome{State: store.StateDead, At: t0.Add(5 * time.Second)},
		Attempt: &store.Attempt{Number: 2, StartedAt: t0.Add(4 * time.Second), Error: "late"}})
	require.NoError(t, err)
	require.Equal(t, []int64{id}, stale)

	got, err := s.Attempts(ctx, id)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, store.Attempt{DeliveryID: id, Number: 1, StartedAt: t0, Duration: 1500 * time.Millisecond, Status: 503, Error: "HTTP 503: busy",
		Response: "busy", Process: ownerA}, got[0])
	require.Equal(t, ownerB, got[1].Process)
	require.Equal(t, 204, got[1].Status)
	require.Equal(t, "late", got[2].Error)

	n, err := s.SweepAttempts(ctx, t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = s.Attempts(ctx, id)
	require.NoError(t, err)
	require.Len(t, got, 2)
}

func testStoredSubscriptions(t *testing.T, s store.Store, other func() store.Store) {
	subs, v0, err := s.StoredSubscriptions(ctx)
	require.NoError(t, err)
	require.Empty(t, subs)
	require.NoError(t, s.CreateSubscription(ctx, store.StoredSubscription{Name: "b", Spec: []byte(`{"url":"http://b"}`), CreatedBy: "admin", CreatedAt: t0}))
	require.NoError(t, other().CreateSubscription(ctx, store.StoredSubscription{Name: "a", Spec: []byte(`{"url":"http://a"}`), CreatedBy: "agent", CreatedAt: t0}))
	err = s.CreateSubscription(ctx, store.StoredSubscription{Name: "a", Spec: []byte(`{}`), CreatedAt: t0})
	require.ErrorIs(t, err, store.ErrExists)
	v1, err := other().SubscriptionsVersion(ctx)
	require.NoError(t, err)
	require.Greater(t, v1, v0, "another process sees the change")

	require.NoError(t, other().UpdateSubscription(ctx, "a", []byte(`{"url":"http://a2"}`), t0.Add(time.Minute)))
	require.ErrorIs(t, s.UpdateSubscription(ctx, "nope", []byte(`{}`), t0), store.ErrNotFound)
	subs, v2, err := s.StoredSubscriptions(ctx)
	require.NoError(t, err)
	require.Greater(t, v2, v1)
	require.Len(t, subs, 2)
	require.Equal(t, "a", subs[0].Name, "by name")
	require.JSONEq(t, `{"url":"http://a2"}`, string(subs[0].Spec))
	require.Equal(t, "agent", subs[0].CreatedBy)
	require.Equal(t, t0, subs[0].CreatedAt)
	require.Equal(t, t0.Add(time.Minute), subs[0].UpdatedAt)

	// A deleted subscription's pause goes with it: one created again under
	// the name starts active. Another's pause stays.
	require.NoError(t, s.Pause(ctx, "b", "paused by admin", t0))
	require.NoError(t, s.Pause(ctx, "a", "paused by admin", t0))
	require.NoError(t, s.DeleteSubscription(ctx, "b"))
	require.ErrorIs(t, s.DeleteSubscription(ctx, "b"), store.ErrNotFound)
	subs, _, err = other().StoredSubscriptions(ctx)
	require.NoError(t, err)
	require.Len(t, subs, 1)
	paused, err := other().Paused(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "paused by admin"}, paused)
}

// testReadersNeverMiss: committers on two handles append events while a
// reader follows EventsAfter from the last number it saw. It must see
// every event: a number assigned but committed after a larger one would
// be skipped for good.
func testReadersNeverMiss(t *testing.T, s store.Store, other func() store.Store) {
	const writers, batches = 4, 25
	handles := []store.Store{s, other()}
	reader := other()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := handles[w%2]
			for b := range batches {
				_, err := h.AppendEvents(ctx, []store.NewEvent{raised(fmt.Sprintf("w%d-b%d-0", w, b), "x"), raised(fmt.Sprintf("w%d-b%d-1", w, b), "x")}, t0)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	finished := false
	for !finished {
		select {
		case <-done:
			finished = true // one more read after the last commit
		default:
		}
		evs, err := reader.EventsAfter(ctx, after, 50)
		require.NoError(t, err)
		for _, e := range evs {
			require.Greater(t, e.ControlNumber, after)
			after = e.ControlNumber
			require.False(t, seen[e.ID], "read twice: %s", e.ID)
			seen[e.ID] = true
		}
		if finished && len(evs) == 50 {
			finished = false // drain
		}
	}
	require.Equal(t, writers*batches*2, len(seen), "every committed event was read, none skipped")
}

func testEventsAfter(t *testing.T, s store.Store, other func() store.Store) {
	n, err := s.LatestControlNumber(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B"}, "s1"))
	require.NoError(t, err)
	_, err = other().AppendEvents(ctx, []store.NewEvent{raised("r1", "x/y")}, t0)
	require.NoError(t, err)
	all, err := s.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, all, 3)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i].ControlNumber, all[i-1].ControlNumber)
	}
	require.Equal(t, "x/y", all[2].Topic)
	require.Equal(t, "/exportbridge/events", all[2].Source)
	require.JSONEq(t, `{"id":"r1"}`, string(all[2].Body))
	require.Equal(t, t0, all[2].CreatedAt)
	page, err := s.EventsAfter(ctx, all[0].ControlNumber, 1)
	require.NoError(t, err)
	require.Equal(t, []string{all[1].ID}, []string{page[0].ID}, "after and limit")
	n, err = other().LatestControlNumber(ctx)
	require.NoError(t, err)
	require.Equal(t, all[2].ControlNumber, n)
}

func testRelease(t *testing.T, s store.Store, other func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B"}, "s1"))
	require.NoError(t, err)
	ds, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.NoError(t, other().Release(ctx, ownerB, ds[0].ID), "another owner's release")
	require.NoError(t, s.Release(ctx, ownerA, ds[1].ID))
	byID := map[int64]store.Delivery{}
	all, err := s.Deliveries(ctx, store.Filter{})
	require.NoError(t, err)
	for _, d := range all {
		byID[d.ID] = d
	}
	require.Equal(t, store.StateInFlight, byID[ds[0].ID].State, "only the owner releases its rows")
	require.Equal(t, store.StatePending, byID[ds[1].ID].State)
	require.Equal(t, 0, byID[ds[1].ID].Attempt, "a released row was never attempted")
	require.Empty(t, byID[ds[1].ID].LeaseOwner)
	again, err := other().ClaimDue(ctx, ownerB, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, again, 1, "a released row is claimed again")
	require.Equal(t, 1, again[0].Attempt)
	require.NoError(t, s.Release(ctx, ownerA), "nothing to release")
}

func testComplete(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B", "C"}, "s1"))
	require.NoError(t, err)
	ds, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, ds, 3)
	at := t0.Add(time.Second)
	stale, err := s.Complete(ctx, ownerA,
		store.Completion{ID: ds[0].ID, Outcome: store.Outcome{State: store.StateDelivered, Status: 200, At: at}},
		store.Completion{ID: ds[1].ID, Outcome: store.Outcome{State: store.StatePending, NextAt: at.Add(12 * time.Second), Status: 503, Error: "HTTP 503", At: at}})
	require.NoError(t, err)
	require.Empty(t, stale)
	stale, err = s.Complete(ctx, ownerA, store.Completion{ID: ds[2].ID, Outcome: store.Outcome{State: store.StateDead, Status: 400, Error: "HTTP 400: bad", At: at}},
		store.Completion{ID: ds[0].ID, Outcome: store.Outcome{State: store.StateDead, At: at}})
	require.NoError(t, err)
	require.Equal(t, []int64{ds[0].ID}, stale, "only in-flight rows complete; the others in the batch still do")

	byID := map[int64]store.Delivery{}
	all, err := s.Deliveries(ctx, store.Filter{})
	require.NoError(t, err)
	for _, d := range all {
		byID[d.ID] = d
	}
	require.Equal(t, store.StateDelivered, byID[ds[0].ID].State)
	require.Equal(t, at, byID[ds[0].ID].DeliveredAt)
	require.Equal(t, store.StatePending, byID[ds[1].ID].State)
	require.Equal(t, at.Add(12*time.Second), byID[ds[1].ID].NextAttemptAt)
	require.Equal(t, 503, byID[ds[1].ID].LastStatus)
	require.Equal(t, "HTTP 503", byID[ds[1].ID].LastError)
	require.Equal(t, store.StateDead, byID[ds[2].ID].State)

	retry, err := s.ClaimDue(ctx, ownerA, "s1", at.Add(11*time.Second), t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, retry, "not before the retry time")
	retry, err = s.ClaimDue(ctx, ownerA, "s1", at.Add(12*time.Second), t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, retry, 1)
	require.Equal(t, 2, retry[0].Attempt)

	dead, err := s.Deliveries(ctx, store.Filter{State: store.StateDead, Subscription: "s1"})
	require.NoError(t, err)
	require.Len(t, dead, 1)
	byEvent, err := s.Deliveries(ctx, store.Filter{EventIDs: []string{ds[0].Event.ID, ds[2].Event.ID}})
	require.NoError(t, err)
	require.Len(t, byEvent, 2)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int{store.StatePending: 0, store.StateInFlight: 1, store.StateDelivered: 1, store.StateDead: 1, store.StateSuperseded: 0}, counts)
}

func testRescue(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B"}, "s1"))
	require.NoError(t, err)
	short, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Second), 1)
	require.NoError(t, err)
	long, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Hour), 1)
	require.NoError(t, err)
	n, err := s.Rescue(ctx, t0.Add(time.Second))
	require.NoError(t, err)
	require.Zero(t, n, "a lease is not expired at its last instant")
	n, err = s.Rescue(ctx, t0.Add(2*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the expired lease is taken back")
	again, err := s.ClaimDue(ctx, ownerB, "s1", t0.Add(2*time.Second), t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, short[0].ID, again[0].ID)
	require.Equal(t, short[0].Event.ID, again[0].Event.ID)
	require.Equal(t, 2, again[0].Attempt, "an attempt cut short by a crash still counts")
	require.Equal(t, ownerB, again[0].LeaseOwner)
	require.NotEqual(t, long[0].ID, again[0].ID)

	// A renewed lease is not rescued at its old expiry.
	n, err = s.RenewLeases(ctx, ownerA, t0.Add(30*time.Minute), t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n, "ownerA's one unexpired lease")
	// An expired lease cannot be renewed: it may be rescued at any moment.
	n, err = s.RenewLeases(ctx, ownerB, t0.Add(90*time.Minute), t0.Add(3*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.Rescue(ctx, t0.Add(90*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "ownerB's expired lease; ownerA's renewed one stays")
	n, err = s.Rescue(ctx, t0.Add(3*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	due, err := s.ClaimDue(ctx, ownerA, "s1", t0.Add(3*time.Hour), t0.Add(4*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 2, "rescued rows are due at once")
}

// testLeasesAcrossProcesses: two handles on one database are two
// processes. Neither completes, renews or rescues the other's live lease; an
// expired lease is rescued by either, and its old holder's completion is
// then refused.
func testLeasesAcrossProcesses(t *testing.T, a store.Store, open func() store.Store) {
	b := open()
	_, err := a.CommitPackage(ctx, Package("j", "m1", []string{"A"}, "s1"))
	require.NoError(t, err)
	ds, err := a.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	id := ds[0].ID
	done := store.Completion{ID: id, Outcome: store.Outcome{State: store.StateDelivered, Status: 204, At: t0.Add(time.Second)}}

	stale, err := b.Complete(ctx, ownerB, done)
	require.NoError(t, err)
	require.Equal(t, []int64{id}, stale, "another process cannot complete a lease it does not hold")
	n, err := b.RenewLeases(ctx, ownerB, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = b.Rescue(ctx, t0.Add(30*time.Second))
	require.NoError(t, err)
	require.Zero(t, n, "a live lease is never rescued")

	late := store.Completion{ID: id, Outcome: store.Outcome{State: store.StateDelivered, Status: 204, At: t0.Add(2 * time.Minute)}}
	stale, err = a.Complete(ctx, ownerA, late)
	require.NoError(t, err)
	require.Equal(t, []int64{id}, stale, "a completion after the lease expired is refused")

	n, err = b.Rescue(ctx, t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	taken, err := b.ClaimDue(ctx, ownerB, "s1", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	stale, err = a.Complete(ctx, ownerA, done)
	require.NoError(t, err)
	require.Equal(t, []int64{id}, stale, "the old holder's outcome is refused once the row was taken over")
	stale, err = b.Complete(ctx, ownerB, store.Completion{ID: id, Outcome: store.Outcome{State: store.StateDelivered, Status: 204, At: t0.Add(150 * time.Second)}})
	require.NoError(t, err)
	require.Empty(t, stale)
}

func testReplay(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.CommitPackage(ctx, Package("j", "m1", []string{"A", "B"}, "s1", "s2"))
	require.NoError(t, err)
	for _, sub := range []string{"s1", "s2"} {
		ds, err := s.ClaimDue(ctx, ownerA, sub, t0, t0.Add(time.Minute), 10)
		require.NoError(t, err)
		for _, d := range ds {
			stale, err := s.Complete(ctx, ownerA, store.Completion{ID: d.ID, Outcome: store.Outcome{State: store.StateDead, Status: 410, At: t0}})
			require.NoError(t, err)
			require.Empty(t, stale)
		}
	}
	dead, err := s.Deliveries(ctx, store.Filter{State: store.StateDead, Subscription: "s1"})
	require.NoError(t, err)
	require.Len(t, dead, 2)
	n, err := s.Replay(ctx, store.Filter{ID: dead[0].ID}, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = s.Replay(ctx, store.Filter{Subscription: "s2"}, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = s.Replay(ctx, store.Filter{}, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "the remaining dead letter")
	ds, err := s.ClaimDue(ctx, ownerA, "s1", t0.Add(time.Minute), t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	ids := map[string]bool{}
	for _, d := range ds {
		require.Equal(t, 1, d.Attempt, "replay starts the attempt count afresh")
		ids[d.Event.ID] = true
	}
	require.True(t, ids[dead[0].Event.ID], "same EventId after replay")
	_, err = s.Replay(ctx, store.Filter{State: store.StateInFlight}, t0)
	require.Error(t, err)
}

// testFilterAndPage selects deliveries by job, entity and creation time,
// pages through them by cursor, counts and replays what a filter selects.
func testFilterAndPage(t *testing.T, s store.Store, _ func() store.Store) {
	early := Package("j1", "m1", []string{"A", "B"}, "s1")
	late := Package("j2", "m2", []string{"A", "C"}, "s1")
	late.At = t0.Add(time.Hour)
	for _, p := range []store.Package{early, late} {
		_, err := s.CommitPackage(ctx, p)
		require.NoError(t, err)
	}
	tests := []struct {
		name string
		f    store.Filter
		want []string // event ids, newest first
	}{
		{"all", store.Filter{}, []string{"ev-m2-1", "ev-m2-0", "ev-m1-1", "ev-m1-0"}},
		{"job", store.Filter{Job: "j1"}, []string{"ev-m1-1", "ev-m1-0"}},
		{"entity", store.Filter{Entity: "A"}, []string{"ev-m2-0", "ev-m1-0"}},
		{"job and entity", store.Filter{Job: "j2", Entity: "A"}, []string{"ev-m2-0"}},
		{"since", store.Filter{Since: t0.Add(time.Minute)}, []string{"ev-m2-1", "ev-m2-0"}},
		{"until", store.Filter{Until: t0.Add(time.Minute)}, []string{"ev-m1-1", "ev-m1-0"}},
		{"no match", store.Filter{Job: "j1", Since: t0.Add(time.Minute)}, nil},
	}
	for _, tc := range tests {
		ds, err := s.Deliveries(ctx, tc.f)
		require.NoError(t, err, tc.name)
		var got []string
		for _, d := range ds {
			got = append(got, d.Event.ID)
		}
		require.Equal(t, tc.want, got, tc.name)
		n, err := s.CountDeliveries(ctx, tc.f)
		require.NoError(t, err, tc.name)
		require.Equal(t, len(tc.want), n, tc.name)
	}

	// Pages of one, each starting below the last ID of the one before.
	var paged []string
	f := store.Filter{Limit: 1}
	for {
		ds, err := s.Deliveries(ctx, f)
		require.NoError(t, err)
		if len(ds) == 0 {
			break
		}
		paged = append(paged, ds[0].Event.ID)
		f.Before = ds[0].ID
	}
	require.Equal(t, tests[0].want, paged)

	ds, err := s.ClaimDue(ctx, ownerA, "s1", t0.Add(2*time.Hour), t0.Add(3*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, ds, 4)
	for _, d := range ds {
		_, err := s.Complete(ctx, ownerA, store.Completion{ID: d.ID, Outcome: store.Outcome{State: store.StateDead, Status: 500, At: t0.Add(2 * time.Hour)}})
		require.NoError(t, err)
	}
	n, err := s.Replay(ctx, store.Filter{Job: "j2", Entity: "C"}, t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the dead letter of j2's entity C")
	n, err = s.CountDeliveries(ctx, store.Filter{State: store.StateDead})
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

// testConcurrentClaims claims from two handles (two processes), two
// goroutines each, until nothing is left: no row is claimed twice.
func testConcurrentClaims(t *testing.T, s store.Store, open func() store.Store) {
	var entities []string
	for i := range 50 {
		entities = append(entities, fmt.Sprintf("E%d", i))
	}
	_, err := s.CommitPackage(ctx, Package("j", "m1", entities, "s1"))
	require.NoError(t, err)
	handles := []store.Store{s, open()}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for i := range 4 {
		h, owner := handles[i%2], fmt.Sprintf("instance-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := h.ClaimDue(ctx, owner, "s1", t0, t0.Add(time.Minute), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
					if d.LeaseOwner != owner {
						t.Errorf("delivery %d claimed by %s reports owner %s", d.ID, owner, d.LeaseOwner)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, 50)
	for id, n := range seen {
		require.Equal(t, 1, n, "delivery %d claimed %d times", id, n)
	}
}

func testExports(t *testing.T, s store.Store, _ func() store.Store) {
	_, err := s.OpenExport(ctx, "vendors")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.StartExport(ctx, store.Export{ExecutionID: "x1", Job: "vendors", StartedAt: t0}))
	e, err := s.OpenExport(ctx, "vendors")
	require.NoError(t, err)
	require.Equal(t, "x1", e.ExecutionID)
	require.Equal(t, "started", e.State)
	require.Error(t, s.StartExport(ctx, store.Export{ExecutionID: "x1", Job: "vendors", StartedAt: t0}), "an execution id is recorded once")

	p := Package("vendors", "x1", []string{"Vendors"}, "s1")
	p.ExecutionID = "x1"
	_, err = s.CommitPackage(ctx, p)
	require.NoError(t, err)
	_, err = s.OpenExport(ctx, "vendors")
	require.ErrorIs(t, err, store.ErrNotFound, "committing the package closes the export")
	x1, err := s.Export(ctx, "x1")
	require.NoError(t, err)
	require.Equal(t, store.ExportCommitted, x1.State)

	// An export that failed is closed as failed, with its reason.
	require.NoError(t, s.StartExport(ctx, store.Export{ExecutionID: "x3", Job: "vendors", StartedAt: t0.Add(time.Minute)}))
	failed := Package("vendors", "x3", nil, "s1")
	failed.ExecutionID, failed.ExportError = "x3", "package export x3 ended Failed: boom"
	_, err = s.CommitPackage(ctx, failed)
	require.NoError(t, err)
	x3, err := s.Export(ctx, "x3")
	require.NoError(t, err)
	require.Equal(t, store.Export{ExecutionID: "x3", Job: "vendors", State: store.ExportFailed, StartedAt: t0.Add(time.Minute), UpdatedAt: t0,
		LastError: "package export x3 ended Failed: boom"}, *x3)
	_, err = s.Export(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.StartExport(ctx, store.Export{ExecutionID: "x2", Job: "vendors", StartedAt: t0.Add(time.Hour)}))
	require.NoError(t, s.FinishExport(ctx, "x2", "failed", "Failed: boom", t0.Add(2*time.Hour)))
	_, err = s.OpenExport(ctx, "vendors")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.FinishExport(ctx, "nope", "failed", "", t0), store.ErrNotFound)
}

func testArtifacts(t *testing.T, s store.Store, _ func() store.Store) {
	p := Package("j", "m1", []string{"A", "B"}, "s1")
	p.Artifacts[1].CreatedAt = t0.Add(time.Hour)
	_, err := s.CommitPackage(ctx, p)
	require.NoError(t, err)
	a, err := s.Artifact(ctx, "art-m1-0")
	require.NoError(t, err)
	require.Equal(t, "A.json", a.Name)
	require.Equal(t, int64(10), a.Bytes)
	_, err = s.Artifact(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	live, err := s.LiveArtifactKeys(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{p.Artifacts[0].Key, p.Artifacts[1].Key}, live)
	old, err := s.ExpiredArtifacts(ctx, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, old, 1)
	require.Equal(t, "art-m1-0", old[0].ID)
	require.NoError(t, s.MarkArtifactDeleted(ctx, "art-m1-0", t0.Add(2*time.Hour)))
	old, err = s.ExpiredArtifacts(ctx, t0.Add(3*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, old, 1, "deleted artifacts are not listed again")
	require.Equal(t, "art-m1-1", old[0].ID)
	a, err = s.Artifact(ctx, "art-m1-0")
	require.NoError(t, err)
	require.False(t, a.DeletedAt.IsZero())
	live, err = s.LiveArtifactKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{p.Artifacts[1].Key}, live, "a deleted artifact's file is no longer kept")
}

// testComparisons: snapshots committed for comparison wait (from another
// handle too) and are kept from retention; settling one commits its
// artifacts and events, makes it the baseline (kept in turn) and happens
// once; a stale job lease is refused.
func testComparisons(t *testing.T, s store.Store, other func() store.Store) {
	lease, err := s.AcquireJobLease(ctx, "j", ownerA, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	first := Package("j", "m1", []string{"A"}, "s1")
	first.Lease = &lease
	first.Comparisons = []store.Comparison{{ArtifactID: "art-m1-0", Job: "j", Entity: "A", EventID: "ev-m1-0", MessageID: "m1", SourceKind: "dequeue", LegalEntity: "usmf", CreatedAt: t0}}
	_, err = s.CommitPackage(ctx, first)
	require.NoError(t, err)
	second := Package("j", "m2", []string{"A"}, "s1")
	second.Lease = &lease
	second.Comparisons = []store.Comparison{{ArtifactID: "art-m2-0", Job: "j", Entity: "A", EventID: "ev-m2-0", MessageID: "m2", CreatedAt: t0.Add(-time.Second)}}
	_, err = s.CommitPackage(ctx, second)
	require.NoError(t, err)

	pending, err := other().PendingComparisons(ctx, "j")
	require.NoError(t, err)
	require.Equal(t, []string{"art-m1-0", "art-m2-0"}, []string{pending[0].ArtifactID, pending[1].ArtifactID}, "in commit order, whatever the clocks said")
	require.Equal(t, "m1", pending[0].MessageID)
	require.Equal(t, "dequeue", pending[0].SourceKind)
	require.Equal(t, "usmf", pending[0].LegalEntity)
	none, err := s.PendingComparisons(ctx, "other-job")
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = s.Baseline(ctx, "j", "A")
	require.ErrorIs(t, err, store.ErrNotFound)
	old, err := s.ExpiredArtifacts(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, old, "snapshots waiting to be compared are kept")

	// The first has no baseline: it becomes one, with no event.
	_, err = s.CompleteComparison(ctx, store.ComparisonDone{Comparison: pending[0], Rebase: true, Lease: &lease, At: t0.Add(time.Minute)})
	require.NoError(t, err)
	// The second: a changes file and its event.
	changes := store.Artifact{ID: "art-changes", Job: "j", Entity: "A", Name: "A.changes.ndjson", Key: "chg/A.changes.ndjson",
		ContentType: "application/x-ndjson", Bytes: 5, SHA256: "cd", Records: 2, CreatedAt: t0.Add(time.Minute)}
	ev := store.NewEvent{Event: store.Event{ID: "ev-changed", Type: "DataExportChanged", CEType: "com.exportbridge.test.changed", Source: "/test/j",
		Subject: "A", Topic: "dataexport/j/A/changes", Job: "j", Entity: "A", Body: []byte(`{}`), ArtifactID: "art-changes", CreatedAt: t0.Add(time.Minute)},
		Subscriptions: []string{"s1"}}
	stale := lease
	stale.Token++
	_, err = s.CompleteComparison(ctx, store.ComparisonDone{Comparison: pending[1], Rebase: true, Lease: &stale, At: t0.Add(time.Minute)})
	require.ErrorIs(t, err, store.ErrLeaseLost, "fenced by the job lease")
	evs, err := s.CompleteComparison(ctx, store.ComparisonDone{Comparison: pending[1], Artifacts: []store.Artifact{changes},
		Events: []store.NewEvent{ev}, Rebase: true, Lease: &lease, At: t0.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Positive(t, evs[0].ControlNumber)
	_, err = s.CompleteComparison(ctx, store.ComparisonDone{Comparison: pending[1], Rebase: true, Lease: &lease, At: t0.Add(time.Minute)})
	require.ErrorIs(t, err, store.ErrNotFound, "settled once")

	b, err := other().Baseline(ctx, "j", "A")
	require.NoError(t, err)
	require.Equal(t, store.Baseline{Job: "j", Entity: "A", ArtifactID: "art-m2-0", EventID: "ev-m2-0"}, *b)
	ds, err := s.Deliveries(ctx, store.Filter{EventIDs: []string{"ev-changed"}})
	require.NoError(t, err)
	require.Len(t, ds, 1, "the change event is delivered")
	a, err := s.Artifact(ctx, "art-changes")
	require.NoError(t, err)
	require.Equal(t, int64(2), a.Records)
	old, err = s.ExpiredArtifacts(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	var ids []string
	for _, a := range old {
		ids = append(ids, a.ID)
	}
	require.ElementsMatch(t, []string{"art-m1-0", "art-changes"}, ids, "the baseline is kept; the older snapshot is not")
}

// testSupersede: a newer snapshot supersedes the pending deliveries of
// older snapshots of its job and entity for the subscriptions it names,
// not those in flight, of other entities, types or subscriptions.
func testSupersede(t *testing.T, s store.Store, _ func() store.Store) {
	old := Package("j", "m1", []string{"A", "B"}, "s1", "s2")
	_, err := s.CommitPackage(ctx, old)
	require.NoError(t, err)
	inFlight := Package("j", "m2", []string{"A"}, "s1")
	_, err = s.CommitPackage(ctx, inFlight)
	require.NoError(t, err)
	claimed, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	var keep int64
	for _, d := range claimed {
		if d.Event.ID == "ev-m2-0" {
			keep = d.ID
		} else {
			require.NoError(t, s.Release(ctx, ownerA, d.ID))
		}
	}
	require.NotZero(t, keep)

	newer := Package("j", "m3", []string{"A"}, "s1", "s2")
	newer.Events[0].Supersede = []string{"s1"}
	_, err = s.CommitPackage(ctx, newer)
	require.NoError(t, err)
	all, err := s.Deliveries(ctx, store.Filter{})
	require.NoError(t, err)
	state := map[string]string{}
	for _, d := range all {
		state[d.Event.ID+"/"+d.Subscription] = d.State
	}
	require.Equal(t, store.StateSuperseded, state["ev-m1-0/s1"], "older A to s1: superseded")
	require.Equal(t, store.StatePending, state["ev-m1-0/s2"], "s2 does not supersede")
	require.Equal(t, store.StatePending, state["ev-m1-1/s1"], "another entity")
	require.Equal(t, store.StateInFlight, state["ev-m2-0/s1"], "in flight: being sent already")
	require.Equal(t, store.StatePending, state["ev-m3-0/s1"], "the newer one itself")
	n, err := s.CountDeliveries(ctx, store.Filter{State: store.StateSuperseded})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	c, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, c[store.StateSuperseded])
	require.Equal(t, 0, c[store.StateDelivered])
	due, err := s.ClaimDue(ctx, ownerA, "s1", t0.Add(time.Hour), t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	for _, d := range due {
		require.NotEqual(t, "ev-m1-0", d.Event.ID, "a superseded delivery is never claimed")
	}
}

// testTraceParent: an event's trace context comes back with it from every
// read: deliveries, claims, streams.
func testTraceParent(t *testing.T, s store.Store, other func() store.Store) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	p := Package("j", "m1", []string{"A"}, "s1")
	p.Events[0].TraceParent, p.Events[0].TraceState = tp, "vendor=abc"
	_, err := s.CommitPackage(ctx, p)
	require.NoError(t, err)
	ds, err := other().Deliveries(ctx, store.Filter{})
	require.NoError(t, err)
	require.Equal(t, tp, ds[0].Event.TraceParent)
	require.Equal(t, "vendor=abc", ds[0].Event.TraceState)
	claimed, err := s.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Equal(t, tp, claimed[0].Event.TraceParent)
	require.Equal(t, "vendor=abc", claimed[0].Event.TraceState)
	evs, err := s.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, tp, evs[0].TraceParent)
	require.Equal(t, "vendor=abc", evs[0].TraceState)
}

func testSettingsAndPauses(t *testing.T, s store.Store, _ func() store.Store) {
	v, err := s.SetSettingIfAbsent(ctx, "k", "first")
	require.NoError(t, err)
	require.Equal(t, "first", v)
	v, err = s.SetSettingIfAbsent(ctx, "k", "second")
	require.NoError(t, err)
	require.Equal(t, "first", v)
	v, err = s.SetSettingIfAbsent(ctx, "k", "third")
	require.NoError(t, err)
	require.Equal(t, "first", v, "the first value stays")

	require.NoError(t, s.Pause(ctx, "s1", "HTTP 410 Gone", t0))
	require.NoError(t, s.Pause(ctx, "s1", "HTTP 410 Gone again", t0))
	p, err := s.Paused(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"s1": "HTTP 410 Gone again"}, p)
	require.NoError(t, s.Resume(ctx, "s1"))
	p, err = s.Paused(ctx)
	require.NoError(t, err)
	require.Empty(t, p)
	require.NoError(t, s.Ping(ctx))
}

// testOneJobLeaseHolder: two processes (two handles) race for one job's
// lease, many times over: exactly one wins each round.
func testOneJobLeaseHolder(t *testing.T, a store.Store, open func() store.Store) {
	b := open()
	for round := range 20 {
		job := fmt.Sprintf("job-%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := map[string]int64{}
		held := 0
		for i, h := range []store.Store{a, b, a, b} {
			owner := fmt.Sprintf("instance-%d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := h.AcquireJobLease(ctx, job, owner, t0, t0.Add(time.Minute))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won[owner] = l.Token
				case errors.Is(err, store.ErrLeaseHeld):
					held++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		require.Len(t, won, 1, "round %d: exactly one holder, got %v", round, won)
		require.Equal(t, 3, held)
	}
}

// testJobLeaseFencing: a lease is held until it expires; then another
// process takes it over with a new token, and the old holder's renewals,
// exports and commits are refused inside their transactions.
func testJobLeaseFencing(t *testing.T, a store.Store, open func() store.Store) {
	b := open()
	la, err := a.AcquireJobLease(ctx, "j", ownerA, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	_, err = b.AcquireJobLease(ctx, "j", ownerB, t0.Add(30*time.Second), t0.Add(2*time.Minute))
	var held *store.LeaseHeldError
	require.ErrorAs(t, err, &held)
	require.Equal(t, ownerA, held.Owner)
	require.Equal(t, t0.Add(time.Minute), held.ExpiresAt)
	la, err = a.RenewJobLease(ctx, la, t0.Add(50*time.Second), t0.Add(2*time.Minute))
	require.NoError(t, err, "a live holder renews")
	require.Equal(t, t0.Add(2*time.Minute), la.ExpiresAt)
	leases, err := b.JobLeases(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, ownerA, leases["j"].Owner)

	// A stalls past its lease; B takes the job over.
	lb, err := b.AcquireJobLease(ctx, "j", ownerB, t0.Add(3*time.Minute), t0.Add(4*time.Minute))
	require.NoError(t, err)
	require.Greater(t, lb.Token, la.Token, "a new holder, a new token")
	_, err = a.RenewJobLease(ctx, la, t0.Add(3*time.Minute), t0.Add(5*time.Minute))
	require.ErrorIs(t, err, store.ErrLeaseLost)
	require.True(t, fault.IsEnvironment(err))

	p := Package("j", "m1", []string{"A"}, "s1")
	p.At, p.Lease = t0.Add(3*time.Minute), &la
	_, err = a.CommitPackage(ctx, p)
	require.ErrorIs(t, err, store.ErrLeaseLost, "the old holder's commit is refused")
	_, err = a.FindMessage(ctx, "j", p.Keys)
	require.ErrorIs(t, err, store.ErrNotFound, "and nothing of it was written")
	err = a.StartExport(ctx, store.Export{ExecutionID: "x1", Job: "j", StartedAt: t0.Add(3 * time.Minute), Lease: &la})
	require.ErrorIs(t, err, store.ErrLeaseLost)

	p.Lease = &lb
	_, err = b.CommitPackage(ctx, p)
	require.NoError(t, err, "the holder commits")
	require.NoError(t, b.StartExport(ctx, store.Export{ExecutionID: "x2", Job: "j", StartedAt: t0.Add(3 * time.Minute), Lease: &lb}))

	// Released, the lease is free at once.
	require.NoError(t, b.ReleaseJobLease(ctx, lb))
	la2, err := a.AcquireJobLease(ctx, "j", ownerA, t0.Add(3*time.Minute), t0.Add(4*time.Minute))
	require.NoError(t, err)
	require.Greater(t, la2.Token, lb.Token)
}

// testRunHistory: runs are recorded from start to end, and a run whose
// process lost the job to another is marked abandoned.
func testRunHistory(t *testing.T, a store.Store, open func() store.Store) {
	b := open()
	_, err := a.AcquireJobLease(ctx, "j", ownerA, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	id1, err := a.StartRun(ctx, store.Run{Job: "j", Owner: ownerA, StartedAt: t0})
	require.NoError(t, err)
	require.NoError(t, a.FinishRun(ctx, store.Run{ID: id1, FinishedAt: t0.Add(time.Second), Outcome: "ok", Packages: 2, Duplicates: 1, Events: 6}))
	id2, err := a.StartRun(ctx, store.Run{Job: "j", Owner: ownerA, StartedAt: t0.Add(2 * time.Second)})
	require.NoError(t, err)

	runs, err := b.Runs(ctx, "j", 10)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, id2, runs[0].ID, "newest first")
	require.Equal(t, store.RunRunning, runs[0].Outcome)
	require.Equal(t, store.Run{ID: id1, Job: "j", Owner: ownerA, StartedAt: t0, FinishedAt: t0.Add(time.Second), Outcome: "ok",
		Packages: 2, Duplicates: 1, Events: 6}, runs[1])

	// ownerA dies; ownerB takes the job over after the lease expired.
	_, err = b.AcquireJobLease(ctx, "j", ownerB, t0.Add(2*time.Minute), t0.Add(3*time.Minute))
	require.NoError(t, err)
	runs, err = b.Runs(ctx, "j", 1)
	require.NoError(t, err)
	require.Equal(t, store.RunAbandoned, runs[0].Outcome)
	require.Equal(t, t0.Add(2*time.Minute), runs[0].FinishedAt)
	none, err := b.Runs(ctx, "other", 10)
	require.NoError(t, err)
	require.Empty(t, none)
}

// testAppendEvents: events without a source message are stored with their
// deliveries in one transaction, and ControlNumbers keep increasing in
// commit order across packages and appended events, from two processes.
func testAppendEvents(t *testing.T, a store.Store, open func() store.Store) {
	b := open()
	p1, err := a.CommitPackage(ctx, Package("j", "m1", []string{"A"}, "s1"))
	require.NoError(t, err)
	raised := []store.NewEvent{
		{Event: store.Event{ID: "raised-1", Type: "OrderShipped", CEType: "com.example.order.shipped", Source: "/erp", Subject: "order/1",
			Topic: "orders/shipped", Body: []byte(`{"order":1}`), CreatedAt: t0}, Subscriptions: []string{"s1", "s2"}},
		{Event: store.Event{ID: "raised-2", Type: "OrderShipped", CEType: "com.example.order.shipped", Source: "/erp", Subject: "order/2",
			Topic: "orders/shipped", Body: []byte(`{"order":2}`), CreatedAt: t0}},
	}
	evs, err := b.AppendEvents(ctx, raised, t0)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	p2, err := a.CommitPackage(ctx, Package("j", "m2", []string{"B"}, "s1"))
	require.NoError(t, err)
	require.Less(t, p1[0].ControlNumber, evs[0].ControlNumber)
	require.Less(t, evs[0].ControlNumber, evs[1].ControlNumber)
	require.Less(t, evs[1].ControlNumber, p2[0].ControlNumber)

	ds, err := a.ClaimDue(ctx, ownerA, "s2", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, ds, 1, "only raised-1 was routed to s2")
	d := ds[0]
	require.Equal(t, "raised-1", d.Event.ID)
	require.Equal(t, "com.example.order.shipped", d.Event.CEType)
	require.Equal(t, "order/1", d.Event.Subject)
	require.JSONEq(t, `{"order":1}`, string(d.Event.Body))
	require.Nil(t, d.Artifact)

	_, err = b.AppendEvents(ctx, []store.NewEvent{{Event: store.Event{ID: "raised-1", Type: "x", Body: []byte(`{}`), CreatedAt: t0}}}, t0)
	require.Error(t, err, "an event id is stored once")
	_, err = a.ClaimDue(ctx, ownerA, "s1", t0, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	counts, err := a.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, counts[store.StateInFlight], "nothing of the refused append was stored: %v", counts)
}
