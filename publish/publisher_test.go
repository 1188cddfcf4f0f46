package publish_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// harness is a store, a publisher and helpers to commit events.
type harness struct {
	t    *testing.T
	st   *store.SQLite
	path string
	pub  *publish.Publisher
	subs []*publish.Subscription
	now  func() time.Time
	obs  *observer
	seq  int
	// registry is what the publisher follows (set by start).
	registry *publish.Registry
}

type observer struct {
	mu       sync.Mutex
	outcomes map[string]int
	circuits []string // "sub/state" changes in order
}

func (o *observer) CircuitChanged(sub, state string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.circuits = append(o.circuits, sub+"/"+state)
}

func (o *observer) circuitChanges() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.circuits...)
}

func (o *observer) Attempted(sub, outcome string, _ time.Duration, _ string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[sub+"/"+outcome]++
}

func (o *observer) get(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[k]
}

func sub(name, url string, mutate ...func(*publish.SubscriptionConfig)) publish.SubscriptionConfig {
	c := publish.SubscriptionConfig{Name: name, URL: url, Secret: []string{testSecret},
		Retry: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}, Timeout: 2 * time.Second}
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func newHarness(t *testing.T, now func() time.Time, cfgs ...publish.SubscriptionConfig) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eb.db")
	st, err := store.OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	h := &harness{t: t, st: st, path: path, now: now, obs: &observer{outcomes: map[string]int{}}}
	for _, c := range cfgs {
		s, err := publish.NewSubscription(c)
		require.NoError(t, err)
		h.subs = append(h.subs, s)
	}
	h.start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.pub.Stop(ctx)
		_ = h.st.Close()
	})
	return h
}

func (h *harness) start() {
	minter := files.NewSigner([]byte("test-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
	opts := []publish.Option{publish.WithObserver(h.obs), publish.WithRenderer(dataexport.Render)}
	if h.now != nil {
		opts = append(opts, publish.WithClock(h.now))
	}
	h.registry = publish.NewRegistry(h.subs)
	h.pub = publish.New(publish.Config{Owner: "test-publisher", PollInterval: 10 * time.Millisecond, RescueInterval: 10 * time.Millisecond},
		h.st, h.registry, minter, zerolog.Nop(), opts...)
	require.NoError(h.t, h.pub.Start(context.Background()))
}

// commit stores a package with one completed event per entity, fanned out
// to every matching subscription, and wakes the publisher.
func (h *harness) commit(entities ...string) []store.Event {
	h.t.Helper()
	h.seq++
	at := time.Now()
	if h.now != nil {
		at = h.now()
	}
	src := dataexport.Source{Job: "customer-groups", Kind: "dequeue", MessageID: fmt.Sprintf("msg-%d", h.seq), LegalEntity: "usmf"}
	p := store.Package{Job: src.Job, MessageID: src.MessageID, Keys: store.MessageKeys{CorrelationID: src.MessageID}, At: at}
	for i, e := range entities {
		aid := fmt.Sprintf("art-%d-%d", h.seq, i)
		p.Artifacts = append(p.Artifacts, store.Artifact{ID: aid, Job: src.Job, Entity: e, Name: e + ".json", Key: aid + "/" + e + ".json", ContentType: "application/json", Bytes: 2, SHA256: "x", CreatedAt: at})
		ev := dataexport.NewCompleted(src, dataexport.File{ArtifactID: aid, Entity: e, SourceFormat: "CSV", Records: 7, ContentType: "application/json", Bytes: 2, SHA256: "x"}, at)
		p.Events = append(p.Events, store.NewEvent{Event: ev, Subscriptions: publish.Subscribers(h.subs, ev)})
	}
	evs, err := h.st.CommitPackage(context.Background(), p)
	require.NoError(h.t, err)
	h.pub.Notify()
	return evs
}

func (h *harness) deliveries(state string) []store.Delivery {
	h.t.Helper()
	ds, err := h.st.Deliveries(context.Background(), store.Filter{State: state, Limit: 100000})
	require.NoError(h.t, err)
	return ds
}

// waitCounts waits until the delivery counts include want, reporting the
// last counts seen if they never do.
func (h *harness) waitCounts(want map[string]int, msg string) {
	h.t.Helper()
	var last map[string]int
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := h.st.Counts(context.Background())
		require.NoError(h.t, err)
		last = c
		ok := true
		for k, v := range want {
			ok = ok && c[k] == v
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s: counts %v, want %v", msg, last, want)
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msg)
}

func TestDeliveredEventCarriesContractAndHeaders(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	rcv.strictTime = true
	h := newHarness(t, nil, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) {
		c.Headers = map[string]string{"X-Api-Key": "k-123"}
	}))
	evs := h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "delivered")
	got := rcv.requests()
	require.Len(t, got, 1)
	r := got[0]
	require.Equal(t, evs[0].ID, r.webhookID)
	require.Equal(t, evs[0].ID, r.ceID)
	require.Equal(t, "com.exportbridge.dataexport.completed", r.ceType)
	require.Equal(t, "/exportbridge/jobs/customer-groups", r.ceSource)
	require.Equal(t, "Customer groups", r.subject)
	require.Equal(t, "1", r.attempt)
	require.Equal(t, "k-123", r.header.Get("X-Api-Key"))
	require.Contains(t, r.header.Get("User-Agent"), "exportbridge/")
	b := r.body
	require.Equal(t, "DataExportCompleted", b["BusinessEventId"])
	require.Equal(t, "usmf", b["BusinessEventLegalEntity"])
	require.Equal(t, float64(evs[0].ControlNumber), b["ControlNumber"])
	require.Equal(t, evs[0].ID, b["EventId"])
	require.Regexp(t, `^/Date\(\d{13}\)/$`, b["EventTime"])
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`, b["EventTimeIso8601"])
	require.Equal(t, "Customer groups", b["EntityName"])
	require.Equal(t, float64(7), b["NoOfRecords"])
	require.Equal(t, []any{}, b["ParentContextRecordSubjects"])
	require.Regexp(t, `^http://127\.0\.0\.1:8080/files/art-1-0/Customer%20groups\.json\?expires=\d+&signature=[0-9a-f]{64}$`, b["DownloadURL"])
	require.NotEmpty(t, b["DownloadURLExpiresAt"])
	require.Equal(t, 1, h.obs.get("flow/delivered"))
}

func TestRetriesThenDeliversWithTheSameID(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, nil, sub("flow", rcv.srv.URL))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "delivered after retries")
	got := rcv.requests()
	require.Len(t, got, 3)
	for i, r := range got {
		require.Equal(t, got[0].webhookID, r.webhookID, "same webhook-id on every attempt")
		require.Equal(t, got[0].ceID, r.ceID)
		require.Equal(t, fmt.Sprint(i+1), r.attempt)
		require.Equal(t, got[0].body["ControlNumber"], r.body["ControlNumber"])
	}
	d := h.deliveries(store.StateDelivered)[0]
	require.Equal(t, 3, d.Attempt)
	require.Equal(t, 2, h.obs.get("flow/retry"))
	require.Equal(t, 1, h.obs.get("flow/delivered"))
}

func TestClientErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(int, http.ResponseWriter) {})
	rcv.respond = func(_ int, w http.ResponseWriter) { http.Error(w, "schema mismatch", http.StatusBadRequest) }
	h := newHarness(t, nil, sub("flow", rcv.srv.URL))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead-lettered")
	// Dead is final (never claimed again), and it got there in one attempt:
	// no retry happened and none can.
	d := h.deliveries(store.StateDead)[0]
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, 1, rcv.count())
	require.Equal(t, 400, d.LastStatus)
	require.Contains(t, d.LastError, "schema mismatch")
}

func TestGoneDeadLettersAndPauses(t *testing.T) {
	t.Parallel()
	gone := true
	var mu sync.Mutex
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, nil, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.MaxInFlight = 1 }))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead-lettered")
	paused, err := h.st.Paused(context.Background())
	require.NoError(t, err)
	require.Contains(t, paused, "flow")

	h.commit("Vendor groups") // not sent while paused
	require.Never(t, func() bool { return rcv.count() > 1 }, 100*time.Millisecond, 5*time.Millisecond, "nothing is sent while paused")
	require.Len(t, h.deliveries(store.StatePending), 1)

	mu.Lock()
	gone = false
	mu.Unlock()
	require.NoError(t, h.pub.Resume(context.Background(), "flow"))
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "resumed")
}

func TestRetryAfterIsObeyed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, clock, sub("flow", rcv.srv.URL)) // its own delay is 20ms
	h.commit("Customer groups")
	eventually(t, func() bool { return rcv.count() == 1 && len(h.deliveries(store.StatePending)) == 1 }, "first attempt recorded")
	d := h.deliveries(store.StatePending)[0]
	require.Equal(t, clock().Add(120*time.Second), d.NextAttemptAt, "Retry-After (longer than the 20ms delay) wins")

	advance(119 * time.Second)
	h.pub.Notify()
	require.Never(t, func() bool { return rcv.count() > 1 }, 100*time.Millisecond, 5*time.Millisecond, "not before Retry-After (ten poll intervals)")

	advance(time.Second)
	h.pub.Notify()
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "delivered once due")
	require.Equal(t, 2, rcv.count())
}

func TestDelaysUsedUpDeadLetters(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	h := newHarness(t, nil, sub("flow", rcv.srv.URL))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead after the last delay")
	require.Equal(t, 5, rcv.count(), "len(retry)+1 attempts")
	require.Equal(t, 5, h.deliveries(store.StateDead)[0].Attempt)
}

func TestSubscriberDownIsRetried(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	url := rcv.srv.URL
	rcv.srv.Close() // connection refused
	h := newHarness(t, nil, sub("flow", url))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead after retries")
	d := h.deliveries(store.StateDead)[0]
	require.Equal(t, 5, d.Attempt)
	require.Zero(t, d.LastStatus)
	require.Contains(t, d.LastError, "connect")
}

func TestSuccessBodyIsRequired(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			_, _ = w.Write([]byte("<html>proxy login</html>"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"accepted"}`))
	})
	h := newHarness(t, nil, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.SuccessBody = "accepted" }))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "delivered on the second attempt")
	require.Equal(t, 2, rcv.count())
}

func TestSlowSubscriberDoesNotDelayFastOne(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int, w http.ResponseWriter) { <-release; w.WriteHeader(http.StatusOK) })
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, nil)
	h := newHarness(t, nil, sub("slow", slow.srv.URL, func(c *publish.SubscriptionConfig) { c.Timeout = 30 * time.Second }), sub("fast", fast.srv.URL))
	var entities []string
	for i := range 20 {
		entities = append(entities, fmt.Sprintf("Entity %d", i))
	}
	h.commit(entities...)
	eventually(t, func() bool { return fast.count() == 20 }, "fast subscriber got everything")
	// ...while the slow one has not answered anything yet (it answers only
	// at cleanup): it holds only its own MaxInFlight (4) slots.
	require.Equal(t, 4, slow.count())
	for _, d := range h.deliveries(store.StateDelivered) {
		require.Equal(t, "fast", d.Subscription)
	}
}

func TestReplayDeadLetterKeepsEventID(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := http.StatusBadRequest
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { mu.Lock(); defer mu.Unlock(); w.WriteHeader(status) })
	h := newHarness(t, nil, sub("flow", rcv.srv.URL))
	evs := h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead")
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	n, err := h.pub.Replay(context.Background(), store.Filter{Subscription: "flow"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 1 }, "replayed")
	got := rcv.requests()
	require.Len(t, got, 2)
	require.Equal(t, evs[0].ID, got[1].webhookID)
	require.Equal(t, evs[0].ID, got[1].ceID)
	require.Equal(t, "1", got[1].attempt, "a replay starts counting attempts again")
}

func TestEntityAndTopicFilters(t *testing.T) {
	t.Parallel()
	all := newReceiver(t, nil)
	one := newReceiver(t, nil)
	other := newReceiver(t, nil)
	h := newHarness(t, nil, sub("all", all.srv.URL),
		sub("one", one.srv.URL, func(c *publish.SubscriptionConfig) { c.Entities = []string{"vendor GROUPS"} }),
		sub("other", other.srv.URL, func(c *publish.SubscriptionConfig) { c.Topics = []string{"dataexport/vendors"} }))
	h.commit("Customer groups", "Vendor groups")
	eventually(t, func() bool { return all.count() == 2 && one.count() == 1 }, "fan-out by filters")
	// "other" matches no topic: it has no delivery row at all, so nothing
	// can ever be sent to it.
	for _, d := range h.deliveries("") {
		require.NotEqual(t, "other", d.Subscription)
	}
	require.Zero(t, other.count())
	require.Equal(t, "Vendor groups", one.requests()[0].subject)
}

// TestReopenMidDeliveryDeliversExactlyOnce closes the database and stops
// the publisher while deliveries are in flight, then starts again on the
// same file: every delivery completes, once per subscription.
func TestReopenMidDeliveryDeliversExactlyOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]map[string]int{"a": {}, "b": {}}
	mk := func(name string) *receiver {
		return newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	}
	ra, rb := mk("a"), mk("b")
	h := newHarness(t, nil, sub("a", ra.srv.URL), sub("b", rb.srv.URL))
	var entities []string
	for i := range 100 {
		entities = append(entities, fmt.Sprintf("E%03d", i))
	}
	evs := h.commit(entities...)
	eventually(t, func() bool { return ra.count()+rb.count() >= 40 }, "some deliveries happened")
	// Stop mid-flight and close the database.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, h.pub.Stop(ctx))
	cancel()
	require.NoError(t, h.st.Close())

	st, err := store.OpenSQLite(context.Background(), h.path)
	require.NoError(t, err)
	h.st = st
	h.start()
	h.waitCounts(map[string]int{store.StateDelivered: 200}, "all delivered after reopen")
	for _, r := range []*receiver{ra, rb} {
		for _, got := range r.requests() {
			key := "a"
			if r == rb {
				key = "b"
			}
			mu.Lock()
			seen[key][got.webhookID]++
			mu.Unlock()
		}
	}
	for _, sub := range []string{"a", "b"} {
		require.Len(t, seen[sub], len(evs), "every event reached %s", sub)
		for id, n := range seen[sub] {
			require.Equal(t, 1, n, "event %s delivered %d times to %s", id, n, sub)
		}
	}
}

// TestDeliveriesLeftInFlightByACrashAreResumed: a process claimed rows and
// died before recording any outcome. Its leases are not taken while they
// last (the process might be alive, only slow); once they expire, the next
// publisher rescues and delivers them, with the same event ids.
func TestDeliveriesLeftInFlightByACrashAreResumed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rcv := newReceiver(t, nil)
	h := newHarness(t, clock, sub("flow", rcv.srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, h.pub.Stop(ctx))
	cancel()
	evs := h.commit("A", "B", "C")
	claimed, err := h.st.ClaimDue(context.Background(), "crashed-instance", "flow", clock(), clock().Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 3)

	h.start()
	require.Never(t, func() bool { return rcv.count() > 0 }, 200*time.Millisecond, 10*time.Millisecond, "a lease is not taken while it lasts")
	mu.Lock()
	now = now.Add(time.Minute + time.Millisecond)
	mu.Unlock()
	h.waitCounts(map[string]int{store.StateDelivered: 3}, "resumed once the leases expired")
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.webhookID] = true
		require.Equal(t, "2", r.attempt, "the crashed attempt counts")
	}
	for _, e := range evs {
		require.True(t, ids[e.ID])
	}
}
