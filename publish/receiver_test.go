package publish_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is one request a test receiver got.
type received struct {
	at        time.Time
	webhookID string
	attempt   string
	ceID      string
	ceType    string
	ceSource  string
	subject   string
	body      map[string]any
	header    http.Header
}

// receiver is a loopback webhook target that verifies every request's
// Standard Webhooks signature with the official library and decodes it as a
// binary-mode CloudEvent with the CloudEvents SDK. respond picks the answer
// for the n-th request (1-based).
type receiver struct {
	t       testing.TB
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter)
	wh      *standardwebhooks.Webhook
	// strictTime verifies the timestamp too (only with the real clock).
	strictTime bool
	srv        *httptest.Server
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	require.NoError(t, err)
	r := &receiver{t: t, respond: respond, wh: wh}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading body: %v", err)
		return
	}
	verify := r.wh.VerifyIgnoringTimestamp
	if r.strictTime {
		verify = r.wh.Verify
	}
	if err := verify(body, req.Header); err != nil {
		r.t.Errorf("signature does not verify: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	req.Body = io.NopCloser(bytesReader(body))
	ev, err := cloudevents.NewEventFromHTTPRequest(req)
	if err != nil {
		r.t.Errorf("not a binary-mode CloudEvent: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		r.t.Errorf("body is not JSON: %v", err)
	}
	r.mu.Lock()
	r.got = append(r.got, received{at: time.Now(), webhookID: req.Header.Get("webhook-id"), attempt: req.Header.Get("exportbridge-attempt"),
		ceID: ev.ID(), ceType: ev.Type(), ceSource: ev.Source(), subject: ev.Subject(), body: m, header: req.Header.Clone()})
	n := len(r.got)
	r.mu.Unlock()
	if r.respond != nil {
		r.respond(n, w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}
