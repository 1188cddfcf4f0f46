package publish_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/testservice"
	"github.com/exportbridge/exportbridge/publish"
)

// BenchmarkDelivery commits 10,000 events fanned out to two subscriptions
// while the publisher delivers them to two idle loopback receivers, and
// reports deliveries/s and the p50/p99 latency from commit to receipt.
//
//   - burst: all 10,000 events at once (100 packages of 100): throughput;
//     latency here is mostly time spent queued behind the burst.
//   - paced: 10 events every 9 ms (about 2,220 deliveries/s offered, above
//     the 2,000/s target) for 9 s: latency when the publisher keeps up.
//
// Both also measure, in the same run, the raw ceiling: the same signed
// bodies POSTed by the same Sender to the same loopback receivers with the
// same concurrency and no store, and report ratio = durable / raw.
func BenchmarkDelivery(b *testing.B) {
	b.Run("burst", func(b *testing.B) { benchDelivery(b, 100, 100, 0, false) })
	// Every attempt traced (sampling at 100%), in the trace stored with its
	// event, spans batched to an exporter that drops them: the cost of
	// [telemetry] against the burst above, telemetry off.
	b.Run("burst-traced", func(b *testing.B) { benchDelivery(b, 100, 100, 0, true) })
	b.Run("paced", func(b *testing.B) { benchDelivery(b, 1000, 10, 9*time.Millisecond, false) })
}

func benchDelivery(b *testing.B, packages, perPackage int, interval time.Duration, traced bool) {
	// Rates are over every iteration, the raw ceiling measured right after
	// each durable run: one run of either swings by a fifth on a shared
	// machine.
	var delivered int
	var durableTime, rawTime time.Duration
	var p50s, p99s []time.Duration
	defer func() {
		b.ReportMetric(float64(delivered)/durableTime.Seconds(), "deliveries/s")
		slices.Sort(p50s)
		slices.Sort(p99s)
		b.ReportMetric(float64(p50s[len(p50s)/2].Milliseconds()), "p50_ms")
		b.ReportMetric(float64(p99s[len(p99s)-1].Milliseconds()), "p99_ms")
		if rawTime > 0 {
			b.ReportMetric(float64(delivered)/rawTime.Seconds(), "raw/s")
			b.ReportMetric(rawTime.Seconds()/durableTime.Seconds(), "ratio")
		}
	}()
	for b.Loop() {
		b.StopTimer()
		var mu sync.Mutex
		committed := map[string]time.Time{}
		var latencies []time.Duration
		done := make(chan struct{})
		total := packages * perPackage * 2
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			id := r.Header.Get("webhook-id")
			mu.Lock()
			c, ok := committed[id]
			if !ok { // the raw ceiling's requests
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
				return
			}
			latencies = append(latencies, at.Sub(c))
			if len(latencies) == total {
				close(done)
			}
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		})
		ra, rb := httptest.NewServer(handler), httptest.NewServer(handler)
		defer ra.Close()
		defer rb.Close()
		st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "eb.db"))
		require.NoError(b, err)
		var subs []*publish.Subscription
		for name, u := range map[string]string{"a": ra.URL, "b": rb.URL} {
			s, err := publish.NewSubscription(publish.SubscriptionConfig{Name: name, URL: u, Secret: []string{testSecret}, MaxInFlight: 16})
			require.NoError(b, err)
			subs = append(subs, s)
		}
		minter := files.NewSigner([]byte("bench-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
		// The product's renderer: each attempt's body carries its ControlNumber
		// and a DownloadURL minted for it.
		opts := []publish.Option{publish.WithRenderer(dataexport.Render)}
		var tp *sdktrace.TracerProvider
		if traced {
			tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			opts = append(opts, publish.WithTracerProvider(tp))
		}
		pub := publish.New(publish.Config{}, st, publish.NewRegistry(subs), minter, zerolog.Nop(), opts...)
		require.NoError(b, pub.Start(context.Background()))
		b.StartTimer()

		start := time.Now()
		tick := time.NewTicker(max(interval, time.Microsecond))
		for p := range packages {
			if interval > 0 {
				<-tick.C
			}
			src := dataexport.Source{Job: "bench", Kind: "dequeue", MessageID: fmt.Sprintf("m%d", p)}
			pkg := store.Package{Job: src.Job, MessageID: src.MessageID, Keys: store.MessageKeys{CorrelationID: src.MessageID}, At: time.Now()}
			for i := range perPackage {
				aid := fmt.Sprintf("a%d-%d", p, i)
				ent := fmt.Sprintf("Entity %d", i)
				pkg.Artifacts = append(pkg.Artifacts, store.Artifact{ID: aid, Job: "bench", Entity: ent, Name: "e.json", Key: aid + "/e.json", ContentType: "application/json", CreatedAt: time.Now()})
				ev := dataexport.NewCompleted(src, dataexport.File{ArtifactID: aid, Entity: ent, SourceFormat: "CSV", ContentType: "application/json"}, time.Now())
				if traced { // as a traced run stores it
					ev.TraceParent = fmt.Sprintf("00-%032x-%016x-01", p+1, i+1)
				}
				pkg.Events = append(pkg.Events, store.NewEvent{Event: ev, Subscriptions: []string{"a", "b"}})
			}
			// Register commit times before the rows are visible to the workers.
			now := time.Now()
			mu.Lock()
			for _, e := range pkg.Events {
				committed[e.ID] = now
			}
			mu.Unlock()
			_, err := st.CommitPackage(context.Background(), pkg)
			require.NoError(b, err)
			pub.Notify()
		}
		tick.Stop()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d of %d deliveries arrived", len(latencies), total)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = pub.Stop(ctx)
		if tp != nil {
			_ = tp.Shutdown(ctx)
		}
		cancel()
		st.Close()
		mu.Lock()
		slices.Sort(latencies)
		p50, p99 := latencies[len(latencies)/2], latencies[len(latencies)*99/100]
		mu.Unlock()
		delivered += total
		durableTime += elapsed
		p50s, p99s = append(p50s, p50), append(p99s, p99)
		if interval == 0 { // a ceiling means something only against a burst
			rawTime += rawCeiling(b, subs, total)
		}
		b.StartTimer()
	}
}

// BenchmarkDeadTargets measures what two dead subscribers cost a healthy
// one: 10,000 events are delivered to the healthy subscriber alone, and then
// (same run, fresh store) together with 10,000 pending deliveries for each of
// two dead targets (one answering 503, one refusing connections). It reports
// both times and ratio = with / alone; the circuit breaker keeps it near 1.
func BenchmarkDeadTargets(b *testing.B) {
	for b.Loop() {
		alone := deliverWithDeadTargets(b, false)
		with := deliverWithDeadTargets(b, true)
		b.ReportMetric(alone.Seconds(), "alone_s")
		b.ReportMetric(with.Seconds(), "with_dead_s")
		b.ReportMetric(with.Seconds()/alone.Seconds(), "ratio")
	}
}

func deliverWithDeadTargets(b *testing.B, dead bool) time.Duration {
	b.Helper()
	const events = 10000
	var mu sync.Mutex
	got := 0
	done := make(chan struct{})
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got++
		if got == events {
			close(done)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer healthy.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	refusing := httptest.NewServer(http.NotFoundHandler())
	refusing.Close() // its port now refuses connections

	st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "eb.db"))
	require.NoError(b, err)
	defer st.Close()
	targets := map[string]string{"healthy": healthy.URL}
	fanout := []string{"healthy"}
	if dead {
		targets["dead-503"], targets["dead-refused"] = failing.URL, refusing.URL
		fanout = append(fanout, "dead-503", "dead-refused")
	}
	var subs []*publish.Subscription
	for name, u := range targets {
		s, err := publish.NewSubscription(publish.SubscriptionConfig{Name: name, URL: u, Secret: []string{testSecret}, MaxInFlight: 16})
		require.NoError(b, err)
		subs = append(subs, s)
	}
	// Everything is committed before the publisher starts, so both runs
	// measure delivery alone.
	for p := range events / 100 {
		src := dataexport.Source{Job: "bench", Kind: "dequeue", MessageID: fmt.Sprintf("m%d", p)}
		pkg := store.Package{Job: src.Job, MessageID: src.MessageID, Keys: store.MessageKeys{CorrelationID: src.MessageID}, At: time.Now()}
		for i := range 100 {
			ev := dataexport.NewCompleted(src, dataexport.File{Entity: fmt.Sprintf("Entity %d", i), SourceFormat: "CSV", ContentType: "application/json"}, time.Now())
			pkg.Events = append(pkg.Events, store.NewEvent{Event: ev, Subscriptions: fanout})
		}
		_, err := st.CommitPackage(context.Background(), pkg)
		require.NoError(b, err)
	}
	minter := files.NewSigner([]byte("bench-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
	pub := publish.New(publish.Config{}, st, publish.NewRegistry(subs), minter, zerolog.Nop())
	start := time.Now()
	require.NoError(b, pub.Start(context.Background()))
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d deliveries arrived", got, events)
	}
	elapsed := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = pub.Stop(ctx)
	return elapsed
}

// rawCeiling POSTs total signed event bodies (one rendered body), split evenly over subs, with
// each subscription's MaxInFlight concurrency, through a Sender and nothing
// else (no store, no claims, no outcomes), and returns the time it took.
// Its requests say attempt 0, so receivers tell them from deliveries.
func rawCeiling(b *testing.B, subs []*publish.Subscription, total int) time.Duration {
	b.Helper()
	src := dataexport.Source{Job: "bench", Kind: "dequeue", MessageID: "raw"}
	ev := dataexport.NewCompleted(src, dataexport.File{Entity: "Entity 1", SourceFormat: "CSV", ContentType: "application/json"}, time.Now())
	// Rendered once, as an attempt renders it (a ControlNumber and a URL).
	ev.ControlNumber = 12345
	minter := files.NewSigner([]byte("bench-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
	expires := time.Now().Add(time.Hour)
	body, err := dataexport.Render(ev, minter.URL("a1-1", "e.json", expires), expires)
	require.NoError(b, err)
	sender := publish.NewSender()
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range subs {
		work := make(chan int, total)
		for i := range total / len(subs) {
			work <- i
		}
		close(work)
		for range s.MaxInFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					if _, err := sender.Send(context.Background(), publish.Request{Sub: s, EventID: ev.ID, CEType: ev.CEType, Source: ev.Source,
						Subject: ev.Subject, Time: ev.CreatedAt, Attempt: 0, Body: body, Now: time.Now()}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkDeliveryReplicas delivers 10,000 events fanned out to two
// subscriptions (20,000 deliveries), committed beforehand to PostgreSQL,
// with 1, 2 and 3 publishers ("replicas", each with its own connection
// pool and owner) sharing the database, and reports deliveries/s against
// the raw ceiling measured in the same run. It needs PostgreSQL
// (EXPORTBRIDGE_TEST_POSTGRES) and skips without it.
func BenchmarkDeliveryReplicas(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			var delivered int
			var durable, raw time.Duration
			for b.Loop() {
				b.StopTimer()
				d, r := deliverWithReplicas(b, n)
				delivered += 20000
				durable += d
				raw += r
				b.StartTimer()
			}
			b.ReportMetric(float64(delivered)/durable.Seconds(), "deliveries/s")
			b.ReportMetric(float64(delivered)/raw.Seconds(), "raw/s")
			b.ReportMetric(raw.Seconds()/durable.Seconds(), "ratio")
		})
	}
}

func deliverWithReplicas(b *testing.B, replicas int) (durable, raw time.Duration) {
	b.Helper()
	const events = 10000
	dsn := testservice.Postgres(b)
	var mu sync.Mutex
	got := 0
	done := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("exportbridge-attempt") == "0" { // the raw ceiling's requests
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mu.Lock()
		got++
		if got == 2*events {
			close(done)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ra, rb := httptest.NewServer(handler), httptest.NewServer(handler)
	defer ra.Close()
	defer rb.Close()
	open := func() store.Store {
		st, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 8})
		require.NoError(b, err)
		return st
	}
	first := open()
	defer first.Close()
	for p := range events / 100 {
		src := dataexport.Source{Job: "bench", Kind: "dequeue", MessageID: fmt.Sprintf("m%d", p)}
		pkg := store.Package{Job: src.Job, MessageID: src.MessageID, Keys: store.MessageKeys{CorrelationID: src.MessageID}, At: time.Now()}
		for i := range 100 {
			ev := dataexport.NewCompleted(src, dataexport.File{Entity: fmt.Sprintf("Entity %d", i), SourceFormat: "CSV", ContentType: "application/json"}, time.Now())
			pkg.Events = append(pkg.Events, store.NewEvent{Event: ev, Subscriptions: []string{"a", "b"}})
		}
		_, err := first.CommitPackage(context.Background(), pkg)
		require.NoError(b, err)
	}
	var subs []*publish.Subscription
	for name, u := range map[string]string{"a": ra.URL, "b": rb.URL} {
		s, err := publish.NewSubscription(publish.SubscriptionConfig{Name: name, URL: u, Secret: []string{testSecret}, MaxInFlight: 16})
		require.NoError(b, err)
		subs = append(subs, s)
	}
	minter := files.NewSigner([]byte("bench-signing-key-0123456789"), "http://127.0.0.1:8080", time.Hour)
	var pubs []*publish.Publisher
	start := time.Now()
	for i := range replicas {
		st := first
		if i > 0 {
			st = open()
			defer st.Close()
		}
		pub := publish.New(publish.Config{Owner: fmt.Sprintf("replica-%d", i)}, st, publish.NewRegistry(subs), minter, zerolog.Nop(),
			publish.WithRenderer(dataexport.Render))
		require.NoError(b, pub.Start(context.Background()))
		pubs = append(pubs, pub)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		b.Fatalf("only %d of %d deliveries arrived", got, 2*events)
	}
	durable = time.Since(start)
	for _, pub := range pubs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = pub.Stop(ctx)
		cancel()
	}
	return durable, rawCeiling(b, subs, 2*events)
}
