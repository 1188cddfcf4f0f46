package adapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/hub"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// BenchmarkRaise measures raised events end to end through the daemon:
// 5,000 events POSTed to /api/events in batches of 50 by 4 clients, read
// back by one SSE stream and delivered to one webhook subscription
// (max_in_flight 16) on a loopback receiver. It reports events/s and the
// p50/p99 latency from the POST that raised an event to its SSE receipt
// and to its webhook receipt, and, in the same run, the engine's raw
// ceiling: the same signed bodies POSTed by a Sender to the same receiver
// with the same concurrency and no store; ratio = webhook rate / raw.
func BenchmarkRaise(b *testing.B) {
	const total, batch, clients = 5000, 50, 4
	for b.Loop() {
		b.StopTimer()
		var mu sync.Mutex
		raisedAt := map[int64]time.Time{} // controlNumber → when its POST started
		byID := map[string]int64{}
		// Receipts are noted as they come and matched with their POSTs at
		// the end: an event can arrive before its POST's answer.
		hookAt, sseAt := map[string]time.Time{}, map[int64]time.Time{}
		hookDone, sseDone := make(chan struct{}), make(chan struct{})
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			id := r.Header.Get("webhook-id")
			mu.Lock()
			hookAt[id] = at
			if len(hookAt) == total {
				close(hookDone)
			}
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer receiver.Close()
		dir := b.TempDir()
		cfg := &Config{Server: ServerConfig{Listen: "127.0.0.1:0", AdminToken: "bench-admin-token-0123"},
			Subscriptions: []publish.SubscriptionConfig{{Name: "hook", URL: receiver.URL, Topics: []string{"bench"}, Secret: []string{testSecret}, MaxInFlight: 16}}}
		cfg.Store.DSN = filepath.Join(dir, "eb.db")
		cfg.Files.Dir, cfg.Files.WorkDir, cfg.Quarantine.Dir = filepath.Join(dir, "files"), filepath.Join(dir, "work"), filepath.Join(dir, "q")
		*cfg = cfg.WithDefaults()
		require.Empty(b, cfg.Validate())
		a, err := StartApp(context.Background(), cfg, zerolog.Nop(), AppOptions{})
		require.NoError(b, err)
		base := cfg.Server.PublicURL
		auth := "Bearer " + cfg.Server.AdminToken

		// The SSE reader, connected before anything is raised.
		req, _ := http.NewRequest("GET", base+"/api/stream?topics=bench", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(b, err)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "id: ") {
					continue
				}
				cn, _ := strconv.ParseInt(line[4:], 10, 64)
				at := time.Now()
				mu.Lock()
				sseAt[cn] = at
				if len(sseAt) == total {
					close(sseDone)
				}
				mu.Unlock()
			}
		}()

		body := func(c, n int) []byte {
			var evs []string
			for i := range batch {
				evs = append(evs, fmt.Sprintf(`{"topic":"bench/c%d","data":{"n":%d,"i":%d,"note":"a raised event of ordinary size"}}`, c, n, i))
			}
			return []byte(`{"events":[` + strings.Join(evs, ",") + `]}`)
		}
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range total / batch / clients {
					req, _ := http.NewRequest("POST", base+"/api/events", bytes.NewReader(body(c, n)))
					req.Header.Set("Authorization", auth)
					// Registered before the POST: an event can reach the
					// receiver before its answer comes back.
					t0 := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					var out struct {
						Events []hub.Raised `json:"events"`
					}
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusAccepted {
						b.Errorf("raise: %d %v", resp.StatusCode, err)
						return
					}
					mu.Lock()
					for _, e := range out.Events {
						raisedAt[e.ControlNumber], byID[e.ID] = t0, e.ControlNumber
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, ch := range []chan struct{}{sseDone, hookDone} {
			select {
			case <-ch:
			case <-time.After(2 * time.Minute):
				mu.Lock()
				b.Fatalf("only %d SSE and %d webhook receipts of %d", len(sseAt), len(hookAt), total)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		resp.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = a.Stop(ctx)
		cancel()

		mu.Lock()
		var sseLat, hookLat []time.Duration
		for cn, at := range sseAt {
			sseLat = append(sseLat, at.Sub(raisedAt[cn]))
		}
		for id, at := range hookAt {
			hookLat = append(hookLat, at.Sub(raisedAt[byID[id]]))
		}
		slices.Sort(sseLat)
		slices.Sort(hookLat)
		b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(sseLat[len(sseLat)*99/100].Milliseconds()), "sse_p99_ms")
		b.ReportMetric(float64(hookLat[len(hookLat)/2].Milliseconds()), "webhook_p50_ms")
		b.ReportMetric(float64(hookLat[len(hookLat)*99/100].Milliseconds()), "webhook_p99_ms")
		mu.Unlock()
		sub, err := publish.NewSubscription(cfg.Subscriptions[0])
		require.NoError(b, err)
		raw := rawSends(b, sub, total)
		b.ReportMetric(raw, "raw/s")
		b.ReportMetric(float64(total)/elapsed.Seconds()/raw, "ratio")
		b.StartTimer()
	}
}

// rawSends POSTs n signed raised-event bodies to sub's target through a
// Sender with sub's concurrency, nothing else, and returns sends per second.
func rawSends(b *testing.B, sub *publish.Subscription, n int) float64 {
	b.Helper()
	ev := store.Event{ID: "raw", Type: hub.DefaultType, CEType: hub.DefaultType, Source: hub.Source, Subject: "bench/c0", Topic: "bench/c0", ControlNumber: 1,
		Body: []byte(`{"id":"raw","topic":"bench/c0","type":"com.exportbridge.event","time":"2026-11-28T12:00:00.000Z","source":"/exportbridge/events","controlNumber":1,"data":{"n":1,"i":1,"note":"a raised event of ordinary size"},"additionalMetadata":{}}`)}
	sender := publish.NewSender()
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	start := time.Now()
	var wg sync.WaitGroup
	for range sub.MaxInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := sender.Send(context.Background(), publish.Request{Sub: sub, EventID: ev.ID, CEType: ev.CEType, Source: ev.Source,
					Subject: ev.Subject, Attempt: 1, Body: ev.Body, Now: time.Now()}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
