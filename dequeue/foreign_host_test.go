package dequeue_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dequeue"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// fakeQueue answers dequeue with one message whose DownloadLocation is loc;
// its download path serves a small file to requests with a bearer token.
func fakeQueue(t *testing.T, loc func(base string) string) (base string) {
	t.Helper()
	var self string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/connector/dequeue/{id}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"CorrelationId": "c1", "PopReceipt": "p1", "DownloadLocation": loc(self)})
	})
	mux.HandleFunc("GET /api/connector/download/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("a,b\r\n1,2\r\n"))
	})
	self = startHTTP(t, mux)
	return self
}

// thief records every request and any Authorization header it receives.
type thief struct {
	requests atomic.Int32
	tokens   atomic.Int32
	url      string
}

func newThief(t *testing.T) *thief {
	th := &thief{}
	th.url = startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		th.requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			th.tokens.Add(1)
		}
		_, _ = w.Write([]byte("stolen"))
	}))
	return th
}

func sourceAt(t *testing.T, base string, mutate func(*finops.Config)) *dequeue.Source {
	t.Helper()
	sim, simBase := finopssim.StartTest(t, finopssim.Config{})
	id, secret := sim.Credentials()
	cfg := finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(simBase), ClientID: id, ClientSecret: secret}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := finops.New(cfg, zerolog.Nop())
	require.NoError(t, err)
	return dequeue.New(c, activity)
}

func TestBearerTokenIsNeverSentToAnotherHost(t *testing.T) {
	t.Parallel()
	th := newThief(t)
	base := fakeQueue(t, func(string) string { return th.url + "/api/connector/download/x?blob=b1" })
	src := sourceAt(t, base, nil)
	ctx := context.Background()
	m, err := src.Dequeue(ctx)
	require.NoError(t, err)
	_, err = src.Download(ctx, m, t.TempDir(), nil)
	require.ErrorIs(t, err, finops.ErrForeignHost)
	u, _ := url.Parse(th.url)
	require.Contains(t, err.Error(), u.Host, "the error names the refused host")
	require.Zero(t, th.requests.Load(), "nothing may be sent to the foreign host")
}

func TestSameHostOtherPortIsForeign(t *testing.T) {
	t.Parallel()
	th := newThief(t) // same 127.0.0.1, another port
	base := fakeQueue(t, func(string) string { return th.url + "/api/connector/download/x" })
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:") && strings.HasPrefix(th.url, "http://127.0.0.1:"))
	src := sourceAt(t, base, nil)
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	_, err = src.Download(context.Background(), m, t.TempDir(), nil)
	require.ErrorIs(t, err, finops.ErrForeignHost)
	require.Zero(t, th.requests.Load())
}

func TestDownloadHostsAllowAnotherHost(t *testing.T) {
	t.Parallel()
	th := newThief(t)
	base := fakeQueue(t, func(string) string { return th.url + "/api/connector/download/x" })
	u, _ := url.Parse(th.url)
	src := sourceAt(t, base, func(c *finops.Config) { c.DownloadHosts = []string{u.Host} })
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	_, err = src.Download(context.Background(), m, t.TempDir(), nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, th.tokens.Load())
}

func TestDownloadOnBaseHostCarriesToken(t *testing.T) {
	t.Parallel()
	base := fakeQueue(t, func(self string) string { return self + "/api/connector/download/x?blob=b1" })
	src := sourceAt(t, base, nil)
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	dl, err := src.Download(context.Background(), m, t.TempDir(), nil)
	require.NoError(t, err)
	require.EqualValues(t, 10, dl.Size)
}

func TestRedirectToAnotherHostIsNotFollowed(t *testing.T) {
	t.Parallel()
	th := newThief(t)
	// The base host redirects the download to the thief.
	redirector := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/connector/dequeue/") {
			_ = json.NewEncoder(w).Encode(map[string]any{"CorrelationId": "c1", "PopReceipt": "p1", "DownloadLocation": "http://" + r.Host + "/dl"})
			return
		}
		http.Redirect(w, r, th.url+"/stolen", http.StatusFound)
	}))
	src := sourceAt(t, redirector, nil)
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	_, err = src.Download(context.Background(), m, t.TempDir(), nil)
	require.ErrorIs(t, err, finops.ErrForeignHost)
	require.Zero(t, th.requests.Load(), "a redirect from a FinOps call is not followed to another host")
}

func TestHostileIDsAreBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("C", 5<<20)
	base := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"CorrelationId": long, "PopReceipt": "p",
			"DownloadLocation": "http://" + r.Host + "/api/connector/download/x?blob=" + strings.Repeat("B", 1000)})
	}))
	src := sourceAt(t, base, func(c *finops.Config) { c.MaxAnswerBytes = 8 << 20 })
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	require.LessOrEqual(t, len(m.CorrelationID), 128)
	require.LessOrEqual(t, len(m.BlobID), 128)
	require.True(t, strings.HasPrefix(m.CorrelationID, "CCCC"))
	other := long[:len(long)-1] + "D"
	require.NotEqual(t, m.CorrelationID, dequeueIDOf(t, other), "ids sharing a prefix stay distinct")
	require.Equal(t, len(m.Raw) > 5<<20, true, "the raw answer is kept whole for the ack")
}

func dequeueIDOf(t *testing.T, id string) string {
	base := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"CorrelationId": id, "PopReceipt": "p", "DownloadLocation": "http://" + r.Host + "/x"})
	}))
	m, err := sourceAt(t, base, func(c *finops.Config) { c.MaxAnswerBytes = 8 << 20 }).Dequeue(context.Background())
	require.NoError(t, err)
	return m.CorrelationID
}
