package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/hub"
	"github.com/exportbridge/exportbridge/internal/store"
)

const (
	adminTok   = "admin-token-0123456789"
	agentTok   = "agent-token-0123456789"
	readerTok  = "reader-token-0123456789"
	walletTok  = "wallet-token-0123456789"
	nobodyTok  = "nobody-token-0123456789"
	streamPath = "/api/stream"
)

type fixture struct {
	t       *testing.T
	st      *store.SQLite
	path    string
	srv     *httptest.Server
	hub     *hub.Hub
	tickers chan chan time.Time // each WebSocket connection's ping ticker, in order
	routed  []string            // subscriptions every raised event is routed to
	obs     *recorder
}

// recorder is a hub.Observer that remembers.
type recorder struct {
	mu      sync.Mutex
	raised  int
	open    map[string]int
	dropped map[string]int
}

func (r *recorder) Raised(_ string, n int) { r.mu.Lock(); r.raised += n; r.mu.Unlock() }
func (r *recorder) StreamOpened(kind string) {
	r.mu.Lock()
	r.open[kind]++
	r.mu.Unlock()
}
func (r *recorder) StreamClosed(kind, dropped string) {
	r.mu.Lock()
	r.open[kind]--
	if dropped != "" {
		r.dropped[kind+"/"+dropped]++
	}
	r.mu.Unlock()
}
func (r *recorder) droppedFor(k string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.dropped[k] }

func newFixture(t *testing.T, cfg hub.Config) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "eb.db"), tickers: make(chan chan time.Time, 16)}
	f.open(cfg)
	return f
}

func (f *fixture) open(cfg hub.Config) {
	st, err := store.OpenSQLite(context.Background(), f.path)
	require.NoError(f.t, err)
	f.st = st
	keys, err := access.NewKeyring([]access.Token{
		{Name: "admin", Token: adminTok, Scopes: []string{"admin"}},
		{Name: "agent", Token: agentTok, Scopes: []string{"publish:transaction", "publish:chain/*/blocks"}},
		{Name: "reader", Token: readerTok, Scopes: []string{"read", "subscribe:transaction"}},
		{Name: "wallet", Token: walletTok, Scopes: []string{"subscribe:transaction", "publish:transaction/credit"}},
		{Name: "nobody", Token: nobodyTok, Scopes: []string{"read"}},
	})
	require.NoError(f.t, err)
	wake := hub.NewBroadcaster()
	raiser := &hub.Raiser{Store: st, Committed: wake.Notify, Route: func(store.Event) []string { return f.routed }}
	f.hub = hub.New(cfg, raiser, st, func(_ context.Context, ev store.Event) ([]byte, error) { return ev.Body, nil }, keys, wake, zerolog.Nop())
	if f.obs == nil {
		f.obs = &recorder{open: map[string]int{}, dropped: map[string]int{}}
	}
	f.hub.Obs = f.obs
	f.hub.Ticker = func(time.Duration) (<-chan time.Time, func()) {
		ch := make(chan time.Time)
		f.tickers <- ch
		return ch, func() {}
	}
	mux := http.NewServeMux()
	f.hub.Register(mux)
	f.srv = httptest.NewServer(mux)
	f.t.Cleanup(func() { f.srv.Close(); _ = f.st.Close() })
}

// restart stops the server and the store and opens both again on the same
// database (a daemon restart).
func (f *fixture) restart(cfg hub.Config) {
	f.srv.CloseClientConnections()
	f.srv.Close()
	require.NoError(f.t, f.st.Close())
	f.open(cfg)
}

func (f *fixture) do(method, path, token, body string, header ...string) (int, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(f.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (f *fixture) raise(token string, topics ...string) []any {
	f.t.Helper()
	var evs []string
	for i, t := range topics {
		evs = append(evs, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, t, i))
	}
	status, out := f.do("POST", "/api/events", token, `{"events":[`+strings.Join(evs, ",")+`]}`)
	require.Equal(f.t, http.StatusAccepted, status, "%v", out)
	return out["events"].([]any)
}

func TestRaiseStoresAndAnswersDurableEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	f.routed = []string{"hook"}
	status, out := f.do("POST", "/api/events", agentTok,
		`{"events":[{"topic":"transaction/credit","data":{"amount":5},"additionalMetadata":{"k":"v"},"type":"com.example.credit"},{"topic":"transaction"}]}`)
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	got := out["events"].([]any)
	require.Len(t, got, 2)
	first := got[0].(map[string]any)
	require.Equal(t, "transaction/credit", first["topic"])
	require.NotEmpty(t, first["id"])

	evs, err := f.st.EventsAfter(context.Background(), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, first["id"], evs[0].ID)
	require.Equal(t, float64(evs[0].ControlNumber), first["controlNumber"])
	require.Equal(t, "com.example.credit", evs[0].CEType)
	require.Equal(t, hub.DefaultType, evs[1].CEType, "no type: the default")
	require.Equal(t, hub.Source, evs[0].Source)
	require.Equal(t, "transaction/credit", evs[0].Subject)
	var body map[string]any
	require.NoError(t, json.Unmarshal(hub.Render(evs[0]), &body))
	require.Equal(t, map[string]any{"amount": float64(5)}, body["data"])
	require.Equal(t, map[string]any{"k": "v"}, body["additionalMetadata"])
	require.Equal(t, float64(evs[0].ControlNumber), body["controlNumber"])
	for _, k := range []string{"id", "topic", "type", "time", "source"} {
		require.NotEmpty(t, body[k], k)
	}
	ds, err := f.st.Deliveries(context.Background(), store.Filter{Subscription: "hook"})
	require.NoError(t, err)
	require.Len(t, ds, 2, "each event fans out to the routed subscriptions")
}

func TestRaiseIsIdempotentPerTokenAndKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	body := `{"events":[{"topic":"transaction/credit","data":1}]}`
	s1, a := f.do("POST", "/api/events", agentTok, body, "Idempotency-Key", "k-1")
	s2, b := f.do("POST", "/api/events", agentTok, body, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusAccepted, s1)
	require.Equal(t, http.StatusAccepted, s2)
	require.Equal(t, a, b, "the same key answers the same events")
	_, c := f.do("POST", "/api/events", walletTok, body, "Idempotency-Key", "k-1")
	require.NotEqual(t, a, c, "another token's key is its own")
	evs, err := f.st.EventsAfter(context.Background(), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
}

func TestRaiseRefusesWhatBreaksTheRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{Limits: hub.Limits{MaxRequestBytes: 64 << 10, MaxEventBytes: 1024, MaxEvents: 3}})
	big := strings.Repeat("x", 2000)
	huge := strings.Repeat("y", 70<<10)
	for _, c := range []struct {
		name, token, body string
		status            int
		msg               string
	}{
		{"no token", "", `{"events":[{"topic":"transaction"}]}`, 401, "bearer token"},
		{"unknown token", "nope-nope-nope-nope", `{"events":[{"topic":"transaction"}]}`, 401, "bearer token"},
		{"malformed", agentTok, "{\n  \"events\": [\n    {\"topic\": }\n]}", 400, "line 3, column"},
		{"not an object", agentTok, `[1]`, 400, "malformed JSON"},
		{"no events", agentTok, `{"events":[]}`, 400, "at least one event"},
		{"too many", agentTok, `{"events":[{"topic":"transaction"},{"topic":"transaction"},{"topic":"transaction"},{"topic":"transaction"}]}`, 400, "at most 3 (max_events)"},
		{"event too big", agentTok, `{"events":[{"topic":"transaction","data":"` + big + `"}]}`, 413, "events[0] is 2033 bytes; at most 1024 (max_event_bytes)"},
		{"request too big", agentTok, `{"events":[{"topic":"transaction","data":"` + huge + `"}]}`, 413, "max_request_bytes"},
		{"bad topic", agentTok, `{"events":[{"topic":"transaction//x"}]}`, 400, "empty segment"},
		{"bad character", agentTok, `{"events":[{"topic":"trans action"}]}`, 400, "[A-Za-z0-9_.-]"},
		{"nine segments", agentTok, `{"events":[{"topic":"a/b/c/d/e/f/g/h/i"}]}`, 400, "at most 8"},
		{"long topic", agentTok, `{"events":[{"topic":"` + strings.Repeat("a", 257) + `"}]}`, 400, "at most 256"},
		{"unknown field", agentTok, `{"events":[{"topic":"transaction","colour":1}]}`, 400, `unknown field "colour"`},
		{"metadata not an object", agentTok, `{"events":[{"topic":"transaction","additionalMetadata":[1]}]}`, 400, "must be an object"},
		{"reserved", adminTok, `{"events":[{"topic":"dataexport/customers/x"}]}`, 403, "product's own"},
		{"outside publish scope", agentTok, `{"events":[{"topic":"transaction"},{"topic":"orders"}]}`, 403, `events[1]: token "agent" lacks scope publish:orders`},
		{"read only", readerTok, `{"events":[{"topic":"transaction"}]}`, 403, "lacks scope publish:transaction"},
		{"wildcard scope, other segment", agentTok, `{"events":[{"topic":"chain/eth/txs"}]}`, 403, "publish:chain/eth/txs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := f.do("POST", "/api/events", c.token, c.body)
			require.Equal(t, c.status, status, "%v", out)
			require.Contains(t, out["error"], c.msg)
		})
	}
	evs, err := f.st.EventsAfter(context.Background(), 0, 10)
	require.NoError(t, err)
	require.Empty(t, evs, "nothing refused was stored")
	f.raise(agentTok, "chain/eth/blocks/1")
}

func TestPullLongPollWakesOnRaise(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	f.raise(agentTok, "transaction/credit", "transaction/debit")
	status, out := f.do("GET", "/api/events?topics=transaction/credit&after=0", readerTok, "")
	require.Equal(t, 200, status, "%v", out)
	require.Len(t, out["events"], 1)
	next := int64(out["next"].(float64))
	require.Equal(t, int64(2), next, "next is past every event read, wanted or not")

	type answer struct {
		status int
		out    map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		s, o := f.do("GET", fmt.Sprintf("/api/events?topics=transaction&after=%d&wait=20s", next), readerTok, "")
		got <- answer{s, o}
	}()
	require.Never(t, func() bool { return len(got) > 0 }, 100*time.Millisecond, 10*time.Millisecond, "nothing new: it waits")
	f.raise(agentTok, "transaction/credit")
	a := <-got
	require.Equal(t, 200, a.status)
	evs := a.out["events"].([]any)
	require.Len(t, evs, 1)
	require.Equal(t, float64(3), evs[0].(map[string]any)["controlNumber"])

	status, out = f.do("GET", "/api/events?topics=orders", readerTok, "")
	require.Equal(t, 403, status)
	require.Contains(t, out["error"], "lacks scope subscribe:orders")
}

// sseReader reads one SSE stream.
type sseReader struct {
	resp *http.Response
	sc   *bufio.Scanner
}

type sseEvent struct {
	id, event string
	data      map[string]any
	comments  []string
}

func (f *fixture) openSSE(token, query, lastID string) *sseReader {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+streamPath+query, nil)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	require.Equal(f.t, 200, resp.StatusCode)
	require.Equal(f.t, "text/event-stream", resp.Header.Get("Content-Type"))
	f.t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next dispatched event (or comment-only block).
func (r *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.id != "" || ev.event != "" || len(ev.comments) > 0 {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			ev.comments = append(ev.comments, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(line[6:]), &ev.data))
		}
	}
	t.Fatalf("stream ended: %v", r.sc.Err())
	return ev
}

// nextEvent returns the next event, past ping comments (which may come
// first when the machine is slow).
func (r *sseReader) nextEvent(t *testing.T) sseEvent {
	t.Helper()
	for {
		if ev := r.next(t); ev.id != "" || ev.event != "" {
			return ev
		}
	}
}

func TestSSEResumesAcrossARestartWithNoGapAndNoRepeat(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{SSEPing: 50 * time.Millisecond})
	f.raise(agentTok, "transaction/credit") // before the stream: not sent without after
	r := f.openSSE(readerTok, "?topics=transaction", "")
	f.raise(agentTok, "transaction/credit", "transaction/debit")
	f.raise(adminTok, "orders/1") // not a subscribed topic
	a, b := r.nextEvent(t), r.nextEvent(t)
	require.Equal(t, "2", a.id)
	require.Equal(t, hub.DefaultType, a.event)
	require.Equal(t, "transaction/credit", a.data["topic"])
	require.Equal(t, float64(2), a.data["controlNumber"])
	require.Equal(t, "3", b.id)
	ping := r.next(t)
	require.Equal(t, []string{"ping"}, ping.comments, "an idle stream gets pings")

	f.restart(hub.Config{SSEPing: time.Hour})
	f.raise(agentTok, "transaction/credit", "transaction/credit")
	r2 := f.openSSE(readerTok, "?topics=transaction", b.id)
	c, d := r2.nextEvent(t), r2.nextEvent(t)
	require.Equal(t, []string{"5", "6"}, []string{c.id, d.id}, "resumed after Last-Event-ID: the missed events, none again (4 is orders)")

	r3 := f.openSSE(readerTok, "?topics=transaction&after=1", "")
	require.Equal(t, "2", r3.nextEvent(t).id, "?after= resumes too")
}

func dial(t *testing.T, f *fixture, path, token string) *websocket.Conn {
	t.Helper()
	return dialWith(t, f, path, token, nil)
}

// smallBuffers is a client whose sockets keep an 8 KiB receive buffer
// (no autotuning): one that does not read fills up at once.
var smallBuffers = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		err = c.(*net.TCPConn).SetReadBuffer(8 << 10)
	}
	return c, err
}}}

func dialWith(t *testing.T, f *fixture, path, token string, client *http.Client) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+path, &websocket.DialOptions{
		HTTPClient: client, Subprotocols: []string{"exportbridge", "bearer." + token}})
	require.NoError(t, err)
	require.Equal(t, "exportbridge", resp.Header.Get("Sec-WebSocket-Protocol"))
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
}

func wsRead(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

func TestWebSocketSpeaksVoltMXServerEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	c := dial(t, f, "/ServerEvents/Stream", walletTok)

	wsSend(t, c, `{"subscribe":["transaction"]}`)
	require.Equal(t, map[string]any{"ack": "subscribe", "topics": []any{"transaction"}}, wsRead(t, c))
	f.raise(agentTok, "transaction/credit")
	ev := wsRead(t, c)["event"].(map[string]any)
	require.Equal(t, "transaction/credit", ev["topic"], "a parent topic receives its children")
	require.Equal(t, map[string]any{"n": float64(0)}, ev["data"])

	wsSend(t, c, `{"events":[{"topic":"transaction/credit","data":{"amount":7}}]}`)
	var ack, own map[string]any
	for _, m := range []map[string]any{wsRead(t, c), wsRead(t, c)} { // the ack and the event itself, in either order
		if m["ack"] != nil {
			ack = m
		} else {
			own = m
		}
	}
	require.Equal(t, "events", ack["ack"])
	require.Len(t, ack["events"], 1)
	require.Equal(t, map[string]any{"amount": float64(7)}, own["event"].(map[string]any)["data"], "raised over the socket, received on it")
	f.obs.mu.Lock()
	require.Equal(t, 2, f.obs.raised, "raises over HTTP and over the socket are counted")
	f.obs.mu.Unlock()

	wsSend(t, c, `{"events":[{"topic":"orders"}]}`)
	require.Contains(t, wsRead(t, c)["error"], "lacks scope publish:orders")
	wsSend(t, c, `{"subscribe":["orders"]}`)
	require.Contains(t, wsRead(t, c)["error"], "lacks scope subscribe:orders")
	wsSend(t, c, `{"subscribe":`)
	require.Contains(t, wsRead(t, c)["error"], "malformed JSON")

	wsSend(t, c, `{"unsubscribe":["transaction"]}`)
	require.Equal(t, "unsubscribe", wsRead(t, c)["ack"])
	f.raise(agentTok, "transaction/credit")
	wsSend(t, c, `{"resume":0}`)
	require.Equal(t, map[string]any{"ack": "resume", "after": float64(0)}, wsRead(t, c))
	wsSend(t, c, `{"subscribe":["transaction/credit"]}`)
	require.Equal(t, "subscribe", wsRead(t, c)["ack"])
	var numbers []float64
	for range 3 {
		numbers = append(numbers, wsRead(t, c)["event"].(map[string]any)["controlNumber"].(float64))
	}
	require.Equal(t, []float64{1, 2, 3}, numbers, "resume replays from the number given, in order")
}

func TestWebSocketClosesAfterThreeUnansweredPings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	tick := func(ch chan time.Time) {
		t.Helper()
		select {
		case ch <- time.Now():
		case <-time.After(5 * time.Second):
			t.Fatal("the ping loop stopped taking ticks")
		}
	}
	// coder/websocket answers pings while a Read is running: this client
	// answers, with a round trip after every tick.
	c := dial(t, f, "/api/stream/ws", readerTok)
	answering := <-f.tickers
	for range 5 {
		tick(answering)
		wsSend(t, c, `{"resume":0}`)
		require.Equal(t, "resume", wsRead(t, c)["ack"])
	}

	// This one reads nothing, so never answers.
	deaf := dial(t, f, "/api/stream/ws", readerTok)
	deafTicker := <-f.tickers
	for range 3 {
		tick(deafTicker)
	}
	tick(deafTicker) // the fourth tick finds three pings unanswered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Reading now finds the connection gone (closed without a handshake,
	// since the peer does not answer).
	_, _, err := deaf.Read(ctx)
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded)

	wsSend(t, c, `{"resume":0}`)
	require.Equal(t, "resume", wsRead(t, c)["ack"], "the answering client is still connected")
	// The server counts the drop as its handler returns, which may be just
	// after the client saw the connection go (cancelling the server's Read
	// closes the socket first).
	require.Eventually(t, func() bool { return f.obs.droppedFor("websocket/pings") == 1 }, 5*time.Second, 5*time.Millisecond, "counted as dropped for unanswered pings")
}

func TestSlowStreamClientIsDroppedWhileAFastOneKeepsUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{WriteTimeout: 300 * time.Millisecond, Limits: hub.Limits{MaxEventBytes: 300 << 10}})
	fast := dial(t, f, "/api/stream/ws", readerTok)
	slow := dialWith(t, f, "/api/stream/ws", readerTok, smallBuffers)
	for _, c := range []*websocket.Conn{fast, slow} {
		c.SetReadLimit(1 << 20)
		wsSend(t, c, `{"subscribe":["transaction"]}`)
	}
	require.Equal(t, "subscribe", wsRead(t, fast)["ack"])
	// 80 events of 200 KB: far more than the server's send buffer (at most
	// 4 MiB here) and the slow client's 8 KiB receive buffer hold while it
	// reads nothing.
	const events = 80
	payload := strings.Repeat("z", 200<<10)
	var wg sync.WaitGroup
	wg.Add(1)
	got := 0
	go func() {
		defer wg.Done()
		for got < events {
			m := wsRead(t, fast)
			if m["event"] != nil {
				got++
			}
		}
	}()
	for i := range events {
		status, out := f.do("POST", "/api/events", agentTok, fmt.Sprintf(`{"events":[{"topic":"transaction/credit","data":{"i":%d,"p":%q}}]}`, i, payload))
		require.Equal(t, 202, status, "%v", out)
	}
	wg.Wait()
	require.Equal(t, events, got, "the fast client received everything")
	// The slow one was cut off by the server (its client would see it
	// only after draining megabytes through its 8 KiB window).
	require.Eventually(t, func() bool { return f.obs.droppedFor("websocket/slow") == 1 }, 15*time.Second, 10*time.Millisecond, "counted as dropped for slowness")
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	require.Equal(t, 1, f.obs.open["websocket"], "the fast client is still connected")
}

var _ = bytes.NewReader

func TestAReaderTooFarBehindIsDisconnectedWithAReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{MaxLag: 300})
	for range 6 {
		topics := make([]string, 100)
		for i := range topics {
			topics[i] = "transaction/credit"
		}
		f.raise(agentTok, topics...)
	}
	r := f.openSSE(readerTok, "?topics=transaction", "0")
	ev := r.next(t)
	require.Equal(t, "error", ev.event)
	require.Empty(t, ev.id)
	require.Contains(t, ev.data["error"], "too far behind")
	require.Eventually(t, func() bool { return f.obs.droppedFor("sse/behind") == 1 }, 5*time.Second, 10*time.Millisecond)

	// Long poll answers what it has and says there is more; from near the
	// end it is within the lag.
	status, out := f.do("GET", "/api/events?topics=transaction&after=0&limit=10", readerTok, "")
	require.Equal(t, 200, status)
	require.Equal(t, true, out["more"])
	status, out = f.do("GET", "/api/events?topics=transaction&after=550&limit=100", readerTok, "")
	require.Equal(t, 200, status)
	require.Len(t, out["events"], 50)
	require.Equal(t, false, out["more"])
}

// TestRaisesKeepTheClientsTraceContext: a raise over HTTP (headers) or the
// WebSocket (fields) keeps the client's traceparent and tracestate, checked
// and canonical; stream messages carry them; a malformed one is dropped.
func TestRaisesKeepTheClientsTraceContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, hub.Config{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	status, _ := f.do("POST", "/api/events", walletTok, `{"events":[{"topic":"transaction/credit","data":1}]}`,
		"traceparent", tp, "tracestate", "vendor=abc")
	require.Equal(t, http.StatusAccepted, status)
	status, _ = f.do("POST", "/api/events", walletTok, `{"events":[{"topic":"transaction/credit","data":2}]}`, "traceparent", "00-nope")
	require.Equal(t, http.StatusAccepted, status)
	c := dialWith(t, f, "/api/stream/ws", walletTok, http.DefaultClient)
	wsSend(t, c, `{"events":[{"topic":"transaction/credit","data":3}],"traceparent":"`+tp+`"}`)
	require.Eventually(t, func() bool {
		evs, err := f.st.EventsAfter(context.Background(), 0, 10)
		require.NoError(t, err)
		return len(evs) == 3
	}, 5*time.Second, 10*time.Millisecond)
	evs, err := f.st.EventsAfter(context.Background(), 0, 10)
	require.NoError(t, err)
	require.Equal(t, [2]string{tp, "vendor=abc"}, [2]string{evs[0].TraceParent, evs[0].TraceState}, "over HTTP")
	require.Equal(t, [2]string{"", ""}, [2]string{evs[1].TraceParent, evs[1].TraceState}, "a malformed one is dropped")
	require.Equal(t, tp, evs[2].TraceParent, "over the WebSocket")

	status, page := f.do("GET", "/api/events?topics=transaction&after=0", walletTok, "")
	require.Equal(t, http.StatusOK, status)
	msgs := page["events"].([]any)
	require.Len(t, msgs, 3)
	first := msgs[0].(map[string]any)
	require.Equal(t, tp, first["traceparent"], "stream messages carry the trace (CloudEvents distributed tracing)")
	require.Equal(t, "vendor=abc", first["tracestate"])
	require.NotContains(t, msgs[1].(map[string]any), "traceparent")
}
