package adapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/access"
	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/publish"
)

const (
	readTok      = "read-token-0123456789"
	publishTok   = "publish-token-0123456789"
	subscribeTok = "subscribe-token-0123456789"
)

func hubEnv(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	return newTestEnv(t, finopssim.Config{}, func(c *Config) {
		c.Jobs = c.Jobs[:1]
		c.Jobs[0].Schedule = "@every 1h"
		c.Tokens = []access.Token{
			{Name: "reader", Token: readTok, Scopes: []string{"read"}},
			{Name: "agent", Token: publishTok, Scopes: []string{"publish:transaction"}},
			{Name: "wallet", Token: subscribeTok, Scopes: []string{"subscribe:transaction"}},
		}
		c.Hub.PollInterval = 50 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

// send makes a request with a JSON body and decodes the answer into out.
func send(t *testing.T, e *testEnv, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, e.cfg.Server.PublicURL+path, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return resp.StatusCode
}

// TestPolicyMatrix: each scope against each endpoint.
func TestPolicyMatrix(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, nil)
	startDaemon(t, e)
	const admin = "test-admin-token"
	tokens := []string{admin, readTok, publishTok, subscribeTok}
	sub := func(name, topic string) string {
		return fmt.Sprintf(`{"name":%q,"url":"http://127.0.0.1:9/hook","topics":[%q]}`, name, topic)
	}
	for _, c := range []struct {
		method, path, body string
		want               []int // admin, read, publish:transaction, subscribe:transaction
	}{
		{"GET", "/api/jobs", "", []int{200, 200, 403, 403}},
		{"GET", "/api/deliveries", "", []int{200, 200, 403, 403}},
		{"POST", "/api/jobs/nope/run", "", []int{404, 403, 403, 403}},
		{"POST", "/api/deliveries/replay", "", []int{200, 403, 403, 403}},
		{"POST", "/api/events", `{"events":[{"topic":"transaction/credit"}]}`, []int{202, 403, 202, 403}},
		{"POST", "/ServerEvents", `{"events":[{"topic":"transaction"}]}`, []int{202, 403, 202, 403}},
		{"POST", "/api/events", `{"events":[{"topic":"orders"}]}`, []int{202, 403, 403, 403}},
		{"GET", "/api/events?topics=transaction", "", []int{200, 403, 403, 200}},
		{"GET", "/api/events?topics=orders", "", []int{200, 403, 403, 403}},
		{"GET", "/api/subscriptions", "", []int{200, 200, 403, 200}},
		{"POST", "/api/subscriptions", sub("by-%s", "transaction"), []int{201, 403, 403, 201}},
		{"POST", "/api/subscriptions", sub("orders-%s", "orders"), []int{201, 403, 403, 403}},
		{"POST", "/api/subscriptions/flow/pause", "", []int{200, 403, 403, 403}},
		{"DELETE", "/api/subscriptions/flow", "", []int{409, 403, 403, 403}},
	} {
		for i, tok := range tokens {
			body := c.body
			if bytes.Contains([]byte(body), []byte("%s")) {
				body = fmt.Sprintf(body, fmt.Sprint(i))
			}
			var out any
			got := send(t, e, c.method, c.path, tok, body, &out)
			require.Equal(t, c.want[i], got, "%s %s as token %d: %v", c.method, c.path, i, out)
			if got == 403 {
				require.Contains(t, out.(map[string]any)["error"], "lacks scope", "a refusal names the missing scope")
			}
		}
	}
}

// webhookReceiver verifies each request with the official Standard
// Webhooks library and decodes it with the CloudEvents SDK.
type webhookReceiver struct {
	t   *testing.T
	wh  *standardwebhooks.Webhook
	mu  sync.Mutex
	got []cloudevents.Event
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	ev, err := cloudevents.NewEventFromHTTPRequest(req)
	if err != nil {
		r.t.Errorf("not a CloudEvent: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, *ev)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *webhookReceiver) events() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestRaisedEventsReachARuntimeSubscriptionThroughItsFilter(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, nil)
	a := startDaemon(t, e)
	// A second process on the same store (another port) sees runtime
	// subscriptions too.
	cfg2 := *e.cfg
	cfg2.Server.Listen, cfg2.Server.PublicURL = "127.0.0.1:0", ""
	cfg2 = cfg2.WithDefaults()
	b := startDaemon(t, &testEnv{t: t, cfg: &cfg2})

	rcv := &webhookReceiver{t: t}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)

	var bad map[string]string
	require.Equal(t, 400, send(t, e, "POST", "/api/subscriptions", subscribeTok,
		`{"name":"big","url":"`+srv.URL+`","topics":["transaction"],"filter":"event.data.amount >"}`, &bad))
	require.Contains(t, bad["error"], "filter")
	require.Contains(t, bad["error"], ":1:", "a bad expression names its position")

	var created adminapi.SubscriptionView
	require.Equal(t, 201, send(t, e, "POST", "/api/subscriptions", subscribeTok,
		`{"name":"big","url":"`+srv.URL+`","topics":["transaction"],"filter":"event.data.amount > 100","retry":["50ms"]}`, &created))
	require.Equal(t, adminapi.OriginAPI, created.Origin)
	require.Equal(t, "wallet", created.CreatedBy)
	require.NotEmpty(t, created.Secret, "a generated secret is shown once")
	wh, err := standardwebhooks.NewWebhook(created.Secret)
	require.NoError(t, err)
	rcv.wh = wh
	var again adminapi.SubscriptionView
	require.Equal(t, 200, send(t, e, "GET", "/api/subscriptions/big", subscribeTok, "", &again))
	require.Empty(t, again.Secret, "and never again")
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(b.Subscriptions.Subscriptions(), func(s *publish.Subscription) bool { return s.Name == "big" })
	}, 10*time.Second, 10*time.Millisecond, "the other process follows the store")

	var raised struct {
		Events []struct {
			ID            string `json:"id"`
			ControlNumber int64  `json:"controlNumber"`
		} `json:"events"`
	}
	require.Equal(t, 202, send(t, e, "POST", "/api/events", publishTok,
		`{"events":[{"topic":"transaction/credit","data":{"amount":50}},{"topic":"transaction/credit","data":{"amount":150},"additionalMetadata":{"k":"v"}},{"topic":"transaction/debit","data":{"amount":500},"type":"com.example.debit"}]}`, &raised))
	require.Len(t, raised.Events, 3)
	require.Eventually(t, func() bool { return len(rcv.events()) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Never(t, func() bool { return len(rcv.events()) > 2 }, 200*time.Millisecond, 10*time.Millisecond, "the filter lets through only amounts over 100")
	got := rcv.events()
	slices.SortFunc(got, func(x, y cloudevents.Event) int { return compareStrings(x.Subject(), y.Subject()) })
	require.Equal(t, "transaction/credit", got[0].Subject())
	require.Equal(t, "com.exportbridge.event", got[0].Type(), "no type given: the default")
	require.Equal(t, "/exportbridge/events", got[0].Source())
	require.Equal(t, raised.Events[1].ID, got[0].ID())
	require.Equal(t, "com.example.debit", got[1].Type())
	var body map[string]any
	require.NoError(t, json.Unmarshal(got[0].Data(), &body))
	require.Equal(t, map[string]any{"amount": float64(150)}, body["data"])
	require.Equal(t, map[string]any{"k": "v"}, body["additionalMetadata"])
	require.Equal(t, float64(raised.Events[1].ControlNumber), body["controlNumber"])
	for _, k := range []string{"id", "topic", "type", "time", "source"} {
		require.NotEmpty(t, body[k], k)
	}

	// The audit: the delivery with its attempt and its event.
	var ds []adminapi.DeliveryView
	require.Equal(t, 200, call(t, e, "GET", "/api/deliveries?subscription=big&state=delivered", "test-admin-token", &ds))
	require.Len(t, ds, 2)
	var detail adminapi.DeliveryDetail
	require.Equal(t, 200, call(t, e, "GET", fmt.Sprintf("/api/deliveries/%d", ds[0].ID), readTok, &detail))
	require.Len(t, detail.Attempts, 1)
	require.Equal(t, 204, detail.Attempts[0].Status)
	require.Contains(t, []string{a.Instance, b.Instance}, detail.Attempts[0].Process)
	require.Equal(t, ds[0].EventID, detail.Event.ID)
	require.Contains(t, string(detail.Event.Body), `"amount"`)

	// Config subscriptions are read-only; runtime ones change and go.
	require.Equal(t, 409, send(t, e, "PATCH", "/api/subscriptions/flow", "test-admin-token", `{"max_in_flight":2}`, nil))
	var patched adminapi.SubscriptionView
	require.Equal(t, 200, send(t, e, "PATCH", "/api/subscriptions/big", subscribeTok, `{"max_per_second":5}`, &patched))
	require.Equal(t, 5.0, patched.MaxPerSecond)
	require.Equal(t, 403, send(t, e, "PATCH", "/api/subscriptions/big", subscribeTok, `{"topics":["orders"]}`, nil), "not outside its scopes")
	require.Equal(t, 200, send(t, e, "DELETE", "/api/subscriptions/big", subscribeTok, "", nil))
	require.Eventually(t, func() bool {
		return !slices.ContainsFunc(b.Subscriptions.Subscriptions(), func(s *publish.Subscription) bool { return s.Name == "big" })
	}, 10*time.Second, 10*time.Millisecond, "the other process drops it too")
}

func TestSubscriptionHostsKeepRuntimeTargetsAway(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, func(c *Config) { c.Server.SubscriptionHosts = []string{"*.example.com"} })
	startDaemon(t, e)
	var out map[string]string
	require.Equal(t, 400, send(t, e, "POST", "/api/subscriptions", "test-admin-token",
		`{"name":"internal","url":"http://169.254.169.254/latest","topics":["transaction"]}`, &out))
	require.Contains(t, out["error"], "server.subscription_hosts")
	require.Equal(t, 400, send(t, e, "POST", "/api/subscriptions", "test-admin-token",
		`{"name":"ftp","url":"ftp://hooks.example.com/x","topics":["transaction"]}`, &out))
	require.Contains(t, out["error"], "http(s)")
	require.Equal(t, 201, send(t, e, "POST", "/api/subscriptions", "test-admin-token",
		`{"name":"ok","url":"https://hooks.example.com/x","topics":["transaction"]}`, nil))
	require.Equal(t, 400, send(t, e, "POST", "/api/subscriptions", "test-admin-token", `{"name":"x","url":"https://a.example.com","colour":1}`, &out))
	require.Contains(t, out["error"], `unknown field "colour"`)
	require.Equal(t, 409, send(t, e, "POST", "/api/subscriptions", "test-admin-token", `{"name":"ok","url":"https://b.example.com"}`, nil))
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestTokensCreatedThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, nil)
	startDaemon(t, e)
	const admin = "test-admin-token"
	require.Equal(t, 403, send(t, e, "POST", "/api/tokens", readTok, `{"name":"ci","scopes":["publish:builds"]}`, nil), "read cannot create")
	var bad map[string]string
	require.Equal(t, 400, send(t, e, "POST", "/api/tokens", admin, `{"name":"ci","scopes":["publish:"]}`, &bad))
	require.Contains(t, bad["error"], "scopes")
	require.Equal(t, 409, send(t, e, "POST", "/api/tokens", admin, `{"name":"reader","scopes":["read"]}`, nil), "a configured name")

	var created adminapi.TokenView
	require.Equal(t, 201, send(t, e, "POST", "/api/tokens", admin, `{"name":"ci","scopes":["publish:builds"]}`, &created))
	require.NotEmpty(t, created.Token, "shown once")
	require.Equal(t, 202, send(t, e, "POST", "/api/events", created.Token, `{"events":[{"topic":"builds/42"}]}`, nil))
	require.Equal(t, 403, send(t, e, "POST", "/api/events", created.Token, `{"events":[{"topic":"transaction"}]}`, nil))

	var list []adminapi.TokenView
	require.Equal(t, 200, send(t, e, "GET", "/api/tokens", admin, "", &list))
	names := map[string]string{}
	for _, tv := range list {
		names[tv.Name] = tv.Origin
		require.Empty(t, tv.Token, "never listed with its value")
	}
	require.Equal(t, map[string]string{"admin": "config", "reader": "config", "agent": "config", "wallet": "config", "ci": "api"}, names)

	require.Equal(t, 200, send(t, e, "DELETE", "/api/tokens/ci", admin, "", nil))
	require.Equal(t, 401, send(t, e, "POST", "/api/events", created.Token, `{"events":[{"topic":"builds/43"}]}`, nil), "a deleted token no longer works")
	require.Equal(t, 409, send(t, e, "DELETE", "/api/tokens/reader", admin, "", nil))
}

// TestDataExportEventsStreamWithFreshLinks: a consumer without a webhook
// reads the export's events over SSE (token in the query, as a browser's
// EventSource must), each with a DownloadURL minted for that read.
func TestDataExportEventsStreamWithFreshLinks(t *testing.T) {
	t.Parallel()
	e := hubEnv(t, nil)
	startDaemon(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a stream that stays silent fails, not hangs
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.cfg.Server.PublicURL+"/api/stream?topics=dataexport&access_token=test-admin-token", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	e.sim.EnqueueSample(testActivity)
	require.Equal(t, 200, call(t, e, "POST", "/api/jobs/customer-groups/run?wait=true", "test-admin-token", nil))

	dec := newSSEDecoder(resp.Body)
	ev := dec.next(t)
	require.Equal(t, "DataExportCompleted", ev.event)
	var env struct {
		ID            string         `json:"id"`
		Topic         string         `json:"topic"`
		ControlNumber int64          `json:"controlNumber"`
		Data          map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(ev.data), &env))
	require.Equal(t, fmt.Sprint(env.ControlNumber), ev.id)
	require.Contains(t, env.Topic, "dataexport/customer-groups/")
	url, _ := env.Data["DownloadURL"].(string)
	require.NotEmpty(t, url)
	file, err := http.Get(url)
	require.NoError(t, err)
	defer file.Body.Close()
	require.Equal(t, 200, file.StatusCode, "the link minted for the stream downloads the file")
}

type sseDecoder struct{ sc *bufio.Scanner }

type sseMessage struct{ id, event, data string }

func newSSEDecoder(r io.Reader) *sseDecoder { return &sseDecoder{sc: bufio.NewScanner(r)} }

func (d *sseDecoder) next(t *testing.T) sseMessage {
	t.Helper()
	var m sseMessage
	for d.sc.Scan() {
		line := d.sc.Text()
		switch {
		case line == "" && m.data != "":
			return m
		case len(line) > 4 && line[:4] == "id: ":
			m.id = line[4:]
		case len(line) > 7 && line[:7] == "event: ":
			m.event = line[7:]
		case len(line) > 6 && line[:6] == "data: ":
			m.data = line[6:]
		}
	}
	t.Fatalf("stream ended: %v", d.sc.Err())
	return m
}
