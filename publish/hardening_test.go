package publish_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
	"github.com/exportbridge/exportbridge/publish"
)

// TestRetryAfterIsCapped: a receiver's Retry-After of ten years postpones
// the next attempt by max_retry_after only.
func TestRetryAfterIsCapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cap   time.Duration
		value string
		want  time.Duration
	}{
		{"default cap", 0, "315360000", time.Hour},
		{"configured cap", 2 * time.Minute, "315360000", 2 * time.Minute},
		{"overflowing value", 0, "9223372037", time.Hour},
		{"below the cap", 0, "90", 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
			rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
				w.Header().Set("Retry-After", tc.value)
				w.WriteHeader(http.StatusTooManyRequests)
			})
			h := newHarness(t, func() time.Time { return now }, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.MaxRetryAfter = tc.cap }))
			h.commit("Customer groups")
			eventually(t, func() bool { return rcv.count() == 1 && len(h.deliveries(store.StatePending)) == 1 }, "first attempt recorded")
			require.Equal(t, now.Add(tc.want), h.deliveries(store.StatePending)[0].NextAttemptAt)
		})
	}
}

// TestRedirectDeadLettersWithItsStatus: a 3xx is the answer, not a hop:
// dead at once, its status recorded, its Location redacted.
func TestRedirectDeadLettersWithItsStatus(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			followed := 0
			elsewhere := newReceiver(t, func(int, http.ResponseWriter) { mu.Lock(); followed++; mu.Unlock() })
			rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
				w.Header().Set("Location", elsewhere.srv.URL+"/x?code=LOCATION-SECRET")
				w.WriteHeader(status)
			})
			h := newHarness(t, nil, sub("flow", rcv.srv.URL))
			h.commit("Customer groups")
			eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead-lettered")
			d := h.deliveries(store.StateDead)[0]
			require.Equal(t, status, d.LastStatus)
			require.Equal(t, 1, d.Attempt, "not retried")
			require.Contains(t, d.LastError, "redirect")
			require.NotContains(t, d.LastError, "LOCATION-SECRET")
			require.Equal(t, 1, rcv.count())
			mu.Lock()
			require.Zero(t, followed, "never followed")
			mu.Unlock()
		})
	}
}

// TestSubscriptionURLSecretsNeverReachLastError: the userinfo and a key in
// the query of a subscription URL stay out of the stored error of a
// transport failure (what /api/deliveries and the CLI show).
func TestSubscriptionURLSecretsNeverReachLastError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // refused from now on: the subscriber is down
	url := "http://alice:PASSWORD-SECRET@" + addr + "/hook?code=CODE-SECRET&x-functions-key=KEY-SECRET"
	h := newHarness(t, nil, sub("flow", url, func(c *publish.SubscriptionConfig) { c.Retry = []time.Duration{} }))
	h.commit("Customer groups")
	eventually(t, func() bool { return len(h.deliveries(store.StateDead)) == 1 }, "dead after one refused attempt")
	d := h.deliveries(store.StateDead)[0]
	require.NotEmpty(t, d.LastError)
	for _, secret := range []string{"PASSWORD-SECRET", "CODE-SECRET", "KEY-SECRET", "alice"} {
		require.NotContains(t, d.LastError, secret)
	}
	require.True(t, strings.Contains(d.LastError, "REDACTED") || !strings.Contains(d.LastError, "http://"), d.LastError)
}

// TestOpenCircuitSpendsNoAttempts: a target that keeps failing opens its
// circuit after breaker_threshold failures; its other due deliveries then
// wait without spending attempts, one probe goes out per interval, and the
// first successful probe closes the circuit and lets everything through.
func TestOpenCircuitSpendsNoAttempts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var down sync.Map
	down.Store("down", true)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		if v, _ := down.Load("down"); v.(bool) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h := newHarness(t, clock, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) {
		c.MaxInFlight = 1
		c.Retry = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}
		c.BreakerThreshold, c.BreakerInterval, c.BreakerMaxInterval = 3, time.Minute, 4*time.Minute
	}))
	entities := make([]string, 20)
	for i := range entities {
		entities[i] = fmt.Sprintf("Entity %d", i)
	}
	h.commit(entities...)
	eventually(t, func() bool { return h.pub.Circuits()["flow"].State == publish.CircuitOpen }, "circuit opens")
	require.Equal(t, 3, rcv.count(), "exactly threshold attempts before it opened")
	require.Equal(t, []string{"flow/" + publish.CircuitOpen}, h.obs.circuitChanges())

	// Time passes within the probe interval: the dispatcher polls, sends nothing.
	advance(59 * time.Second)
	h.pub.Notify()
	require.Never(t, func() bool { return rcv.count() > 3 }, 100*time.Millisecond, 5*time.Millisecond, "no attempt while open")

	advance(time.Second)
	eventually(t, func() bool { return rcv.count() == 4 }, "one probe at the interval")
	require.Never(t, func() bool { return rcv.count() > 4 }, 100*time.Millisecond, 5*time.Millisecond, "only one probe")
	require.Equal(t, 2*time.Minute, h.pub.Circuits()["flow"].NextProbeAt.Sub(clock()), "the failed probe doubles the interval")

	down.Store("down", false)
	advance(2 * time.Minute)
	eventually(t, func() bool { return len(h.deliveries(store.StateDelivered)) == 20 }, "closed: everything delivered")
	require.Equal(t, []string{"flow/" + publish.CircuitOpen, "flow/" + publish.CircuitClosed}, h.obs.circuitChanges())
	require.Empty(t, h.deliveries(store.StateDead), "no delivery spent its attempts while the circuit was open")
	require.Equal(t, 24, rcv.count(), "3 failures + 1 failed probe + 20 deliveries")
}

// TestEngineDeliversAnyStoredEvent: an event appended without a source
// message, of no contract the engine knows, is delivered with its stored
// CloudEvents attributes and its body as stored.
func TestEngineDeliversAnyStoredEvent(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	h := newHarness(t, nil, sub("orders", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.Topics = []string{"orders"} }))
	ev := store.Event{ID: "2b6d4e0a-1f5c-4f0e-9d1a-3c2e5b7a9f10", Type: "OrderShipped", CEType: "com.example.order.shipped", Source: "/erp/orders",
		Subject: "order/1001", Topic: "orders/shipped", Body: []byte(`{"order":1001,"carrier":"DHL"}`), CreatedAt: time.Now()}
	_, err := h.st.AppendEvents(context.Background(), []store.NewEvent{{Event: ev, Subscriptions: publish.Subscribers(h.subs, ev)}}, time.Now())
	require.NoError(t, err)
	h.pub.Notify()
	eventually(t, func() bool { return rcv.count() == 1 }, "delivered")
	r := rcv.requests()[0]
	require.Equal(t, ev.ID, r.webhookID)
	require.Equal(t, "com.example.order.shipped", r.ceType)
	require.Equal(t, "/erp/orders", r.ceSource)
	require.Equal(t, "order/1001", r.subject)
	require.Equal(t, map[string]any{"order": float64(1001), "carrier": "DHL"}, r.body)
}

// TestSubscriptionsChangeWhileRunning: the engine follows its registry: a
// subscription added while it runs gets a dispatcher and its deliveries; one
// removed stops being sent to, its deliveries kept pending.
func TestSubscriptionsChangeWhileRunning(t *testing.T) {
	t.Parallel()
	first, second := newReceiver(t, nil), newReceiver(t, nil)
	h := newHarness(t, nil, sub("first", first.srv.URL))
	reg := h.registry
	h.commit("A")
	eventually(t, func() bool { return first.count() == 1 }, "first delivers")

	added, err := publish.NewSubscription(sub("second", second.srv.URL))
	require.NoError(t, err)
	reg.Set(append(reg.Subscriptions(), added))
	h.subs = reg.Subscriptions() // routing of the next commits
	h.commit("B")
	eventually(t, func() bool { return first.count() == 2 && second.count() == 1 }, "the added subscription delivers without a restart")
	require.Equal(t, []string{"first", "second"}, h.pub.Dispatching())

	reg.Set([]*publish.Subscription{added})
	h.subs = reg.Subscriptions()
	eventually(t, func() bool { return slices.Equal(h.pub.Dispatching(), []string{"second"}) }, "the removed subscription's dispatcher stops")
	// A delivery for the removed subscription (committed by a process that
	// still routed to it) waits, pending.
	ev := dataexport.NewCompleted(dataexport.Source{Job: "j", Kind: "dequeue", MessageID: "late"}, dataexport.File{Entity: "C"}, time.Now())
	_, err = h.st.AppendEvents(context.Background(), []store.NewEvent{{Event: ev, Subscriptions: []string{"first", "second"}}}, time.Now())
	require.NoError(t, err)
	h.pub.Notify()
	eventually(t, func() bool { return second.count() == 2 }, "the remaining subscription still delivers")
	require.Never(t, func() bool { return first.count() > 2 }, 100*time.Millisecond, 5*time.Millisecond, "nothing is sent to a removed subscription")
	pending := h.deliveries(store.StatePending)
	require.Len(t, pending, 1)
	require.Equal(t, "first", pending[0].Subscription)
}

// TestStopReturnsClaimedRowsUnattempted: a dispatcher claims ahead of its
// attempts. At Stop, the rows it claimed and never sent go back to pending
// as they were (attempt 0, no lease), for whoever runs next, while the
// attempt in flight finishes and is recorded.
func TestStopReturnsClaimedRowsUnattempted(t *testing.T) {
	t.Parallel()
	unblock := make(chan struct{})
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		<-unblock
		w.WriteHeader(http.StatusNoContent)
	})
	h := newHarness(t, nil, sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.MaxInFlight = 1 }))
	h.commit("A", "B", "C")
	eventually(t, func() bool { return rcv.count() == 1 }, "the first attempt is out")
	require.Len(t, h.deliveries(store.StateInFlight), 3, "the others were claimed ahead of it")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- h.pub.Stop(ctx)
	}()
	eventually(t, func() bool { return len(h.deliveries(store.StatePending)) == 2 }, "unsent rows returned while the attempt runs")
	close(unblock)
	require.NoError(t, <-stopped)
	require.Len(t, h.deliveries(store.StateDelivered), 1)
	for _, d := range h.deliveries(store.StatePending) {
		require.Equal(t, 0, d.Attempt, "a returned row was never attempted")
		require.Empty(t, d.LeaseOwner)
	}
	require.Equal(t, 1, rcv.count())
}

// TestReplicasShareTheDeliveries: two publishers ("replicas", each with its
// own pool and owner) on one PostgreSQL database deliver one backlog
// together, each delivery once: the attempts name both.
func TestReplicasShareTheDeliveries(t *testing.T) {
	t.Parallel()
	dsn := testservice.Postgres(t)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		time.Sleep(5 * time.Millisecond) // a target that takes a moment: both replicas claim
		w.WriteHeader(http.StatusNoContent)
	})
	open := func() *store.Postgres {
		st, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := open(), open()
	s, err := publish.NewSubscription(sub("flow", rcv.srv.URL, func(c *publish.SubscriptionConfig) { c.MaxInFlight = 2 }))
	require.NoError(t, err)
	src := dataexport.Source{Job: "j", Kind: "dequeue", MessageID: "m"}
	var evs []store.NewEvent
	for i := range 100 {
		ev := dataexport.NewCompleted(src, dataexport.File{Entity: fmt.Sprintf("E%d", i)}, time.Now())
		evs = append(evs, store.NewEvent{Event: ev, Subscriptions: []string{"flow"}})
	}
	_, err = a.AppendEvents(context.Background(), evs, time.Now())
	require.NoError(t, err)
	minter := files.NewSigner([]byte("test-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
	for i, st := range []*store.Postgres{a, b} {
		pub := publish.New(publish.Config{Owner: fmt.Sprintf("replica-%d", i), PollInterval: 10 * time.Millisecond}, st,
			publish.NewRegistry([]*publish.Subscription{s}), minter, zerolog.Nop())
		require.NoError(t, pub.Start(context.Background()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = pub.Stop(ctx)
		})
	}
	eventually(t, func() bool {
		c, err := a.Counts(context.Background())
		return err == nil && c[store.StateDelivered] == 100
	}, "the backlog is delivered")
	ids := map[string]int{}
	for _, r := range rcv.requests() {
		ids[r.webhookID]++
	}
	require.Len(t, ids, 100)
	for id, n := range ids {
		require.Equal(t, 1, n, "event %s sent %d times", id, n)
	}
	by := map[string]int{}
	ds, err := a.Deliveries(context.Background(), store.Filter{Limit: 1000})
	require.NoError(t, err)
	for _, d := range ds {
		at, err := b.Attempts(context.Background(), d.ID)
		require.NoError(t, err)
		for _, x := range at {
			by[x.Process]++
		}
	}
	require.Len(t, by, 2, "both replicas delivered: %v", by)
}
