package finops_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

// waits records requested retry waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func newClient(t *testing.T, base string, sim *finopssim.Server, mutate func(*finops.Config), opts ...finops.Option) *finops.Client {
	t.Helper()
	id, secret := sim.Credentials()
	cfg := finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret, Timeout: 2 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := finops.New(cfg, zerolog.Nop(), opts...)
	require.NoError(t, err)
	return c
}

func dequeueReq(activity string) finops.Request {
	return finops.Request{Op: "dequeue", Method: http.MethodGet, Path: "api/connector/dequeue/" + activity}
}

const tokenPath = "POST /sim-tenant/oauth2/v2.0/token"

func TestTokenIsCachedAndRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	clock := finopssim.NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	sim, base := finopssim.StartTest(t, finopssim.Config{TokenTTL: 10 * time.Minute, Now: clock.Now})
	c := newClient(t, base, sim, nil, finops.WithClock(clock.Now))
	ctx := context.Background()

	for range 3 {
		_, err := c.Do(ctx, dequeueReq("a1"))
		require.NoError(t, err)
	}
	require.Equal(t, 1, sim.Requests(tokenPath), "token must be reused while valid")

	// 9m30s later the token has 30s left: less than the 60s margin, so a new one is fetched.
	clock.Advance(9*time.Minute + 30*time.Second)
	_, err := c.Do(ctx, dequeueReq("a1"))
	require.NoError(t, err)
	require.Equal(t, 2, sim.Requests(tokenPath))
}

func TestRefusedTokenIsFetchedAgainOnce(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	c := newClient(t, base, sim, nil)
	ctx := context.Background()
	_, err := c.Do(ctx, dequeueReq("a1"))
	require.NoError(t, err)

	sim.RevokeTokens() // the cached token is now refused with 401
	_, err = c.Do(ctx, dequeueReq("a1"))
	require.NoError(t, err)
	require.Equal(t, 2, sim.Requests(tokenPath))
	require.Equal(t, 3, sim.Requests("GET /api/connector/dequeue/a1"), "one 401 and one retry")
}

func TestPersistent401IsReturnedAfterOneRetry(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: http.StatusUnauthorized})
	c := newClient(t, base, sim, nil)
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	require.ErrorIs(t, err, finops.ErrUnauthorized)
	require.Equal(t, 2, sim.Requests("GET /api/connector/dequeue/a1"))
}

func TestBadClientSecretIsNotRetried(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	w := &waits{}
	c := newClient(t, base, sim, func(c *finops.Config) { c.ClientSecret = "wrong-secret" }, finops.WithWait(w.wait))
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	var te *finops.TokenError
	require.ErrorAs(t, err, &te)
	require.Contains(t, err.Error(), "AADSTS7000215")
	require.NotContains(t, err.Error(), "wrong-secret")
	require.Empty(t, w.list())
	require.Equal(t, 1, sim.Requests(tokenPath))
}

func TestV1TokenEndpointWithStringExpiry(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	c := newClient(t, base, sim, func(c *finops.Config) { c.TokenURL = base + "/sim-tenant/oauth2/token" })
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	require.NoError(t, err)
	require.Equal(t, 1, sim.Requests("POST /sim-tenant/oauth2/token"))
}

func TestThrottlingObeysRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"429 seconds", http.StatusTooManyRequests, "7", 7 * time.Second},
		{"503 seconds", http.StatusServiceUnavailable, "2", 2 * time.Second},
		{"429 without header defaults to 30s", http.StatusTooManyRequests, "", 30 * time.Second},
		{"429 HTTP date", http.StatusTooManyRequests, "Mon, 23 Nov 2026 10:01:30 GMT", 90 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := finopssim.NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
			sim, base := finopssim.StartTest(t, finopssim.Config{Now: clock.Now})
			sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: tc.status, RetryAfter: tc.retryAfter, Times: 2})
			w := &waits{}
			c := newClient(t, base, sim, nil, finops.WithWait(w.wait), finops.WithClock(clock.Now))
			resp, err := c.Do(context.Background(), dequeueReq("a1"))
			require.NoError(t, err)
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
			require.Equal(t, []time.Duration{tc.want, tc.want}, w.list())
		})
	}
}

func TestThrottlingGivesUpAfterMaxThrottleWait(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: http.StatusTooManyRequests, RetryAfter: "60"})
	w := &waits{}
	c := newClient(t, base, sim, func(c *finops.Config) { c.MaxThrottleWait = 3 * time.Minute }, finops.WithWait(w.wait))
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	require.ErrorIs(t, err, finops.ErrThrottled)
	require.Equal(t, []time.Duration{time.Minute, time.Minute, time.Minute}, w.list())
}

func TestServerErrorsRetryWithBackoffThenSucceed(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: http.StatusInternalServerError, Times: 3})
	w := &waits{}
	c := newClient(t, base, sim, func(c *finops.Config) { c.RetryBase, c.RetryMax = time.Second, 3*time.Second },
		finops.WithWait(w.wait), finops.WithRand(func() float64 { return 1 }))
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	require.NoError(t, err)
	// Equal jitter at rand=1: base·2^(n-1), capped at RetryMax.
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, w.list())
}

func TestServerErrorsGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/data/", Status: http.StatusBadGateway})
	w := &waits{}
	c := newClient(t, base, sim, func(c *finops.Config) { c.MaxAttempts = 3 }, finops.WithWait(w.wait))
	_, err := c.Do(context.Background(), finops.Request{Op: "GetExecutionSummaryStatus", Method: http.MethodPost,
		Path: "data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExecutionSummaryStatus", JSON: map[string]string{"executionId": "x"}})
	require.True(t, finops.IsStatus(err, http.StatusBadGateway), "got %v", err)
	require.Contains(t, err.Error(), "gave up after 3 attempts")
	require.Len(t, w.list(), 2)
}

func TestTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Delay: 2 * time.Second, Times: 1})
	w := &waits{}
	c := newClient(t, base, sim, func(c *finops.Config) { c.Timeout = 100 * time.Millisecond }, finops.WithWait(w.wait))
	_, err := c.Do(context.Background(), dequeueReq("a1"))
	require.NoError(t, err)
	require.Len(t, w.list(), 1)
}

func TestWaitIsCancellable(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: http.StatusTooManyRequests, RetryAfter: "300"})
	c := newClient(t, base, sim, nil) // real waits
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Do(ctx, dequeueReq("a1")); done <- err }()
	require.Eventually(t, func() bool { return sim.Requests("GET /api/connector/dequeue/a1") == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled context did not end the Retry-After wait")
	}
}

func TestODataInnerErrorSurfaces(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	c := newClient(t, base, sim, nil)
	_, err := c.Do(context.Background(), finops.Request{Op: "ExportToPackage", Method: http.MethodPost,
		Path: "data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage", JSON: map[string]string{}})
	var se *finops.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.StatusCode)
	require.Contains(t, se.Message, "Export to package failed for definition group")
	require.NotContains(t, se.Message, "An error has occurred")
}

func TestDownloadDetectsTruncationAndRetries(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.EnqueueSample("a1")
	c := newClient(t, base, sim, nil, finops.WithWait((&waits{}).wait))
	dir := t.TempDir()
	loc := dequeueLocation(t, c)

	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/download/", Truncate: true})
	_, err := c.Download(context.Background(), finops.Request{Op: "download", Path: loc}, dir)
	require.ErrorIs(t, err, finops.ErrTruncated)
	entries, _ := os.ReadDir(dir)
	require.Empty(t, entries, "a failed download leaves no file")

	sim.ClearFaults()
	sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/download/", Truncate: true, Times: 1})
	dl, err := c.Download(context.Background(), finops.Request{Op: "download", Path: loc}, dir)
	require.NoError(t, err)
	require.Positive(t, dl.Size)
}

func TestDownloadSizeLimit(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	sim.EnqueueSample("a1")
	c := newClient(t, base, sim, func(c *finops.Config) { c.MaxDownloadBytes = 100 })
	_, err := c.Download(context.Background(), finops.Request{Op: "download", Path: dequeueLocation(t, c)}, t.TempDir())
	require.ErrorIs(t, err, finops.ErrTooLarge)
}

func dequeueLocation(t *testing.T, c *finops.Client) string {
	t.Helper()
	resp, err := c.Do(context.Background(), dequeueReq("a1"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	i := strings.Index(string(resp.Body), `"DownloadLocation":"`)
	require.GreaterOrEqual(t, i, 0)
	rest := string(resp.Body)[i+len(`"DownloadLocation":"`):]
	return strings.ReplaceAll(rest[:strings.IndexByte(rest, '"')], `\u0026`, "&")
}

func TestErrorsDoNotLeakSASSignature(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusForbidden)
	}))
	t.Cleanup(ts.Close)
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	w := &waits{}
	c := newClient(t, base, sim, nil, finops.WithWait(w.wait))
	_, err := c.Download(context.Background(), finops.Request{Op: "package download", NoAuth: true,
		Path: ts.URL + "/dmf/p.zip?sv=2014-02-14&sig=SUPERSECRETSIG&se=2026-01-01"}, t.TempDir())
	require.True(t, finops.IsStatus(err, http.StatusForbidden))
	require.NotContains(t, err.Error(), "SUPERSECRETSIG")
	require.Contains(t, err.Error(), "sig=REDACTED")

	// Transport errors carry the URL too.
	ts.Close()
	_, err = c.Download(context.Background(), finops.Request{Op: "package download", NoAuth: true,
		Path: ts.URL + "/dmf/p.zip?sig=SUPERSECRETSIG"}, t.TempDir())
	require.Error(t, err)
	require.False(t, errors.Is(err, context.Canceled))
	require.Contains(t, err.Error(), "gave up after 5 attempts", "connection refused is retried")
	require.NotContains(t, err.Error(), "SUPERSECRETSIG")
}

func TestHugeRetryAfterGivesUpInsteadOfOverflowing(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"9223372037", "99999999999999999999", "-5"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			sim, base := finopssim.StartTest(t, finopssim.Config{})
			sim.InjectFault(finopssim.Fault{PathPrefix: "/api/connector/dequeue/", Status: http.StatusTooManyRequests, RetryAfter: v})
			w := &waits{}
			c := newClient(t, base, sim, func(c *finops.Config) { c.MaxThrottleWait = 2 * time.Minute }, finops.WithWait(w.wait))
			_, err := c.Do(context.Background(), dequeueReq("a1"))
			require.ErrorIs(t, err, finops.ErrThrottled)
			require.Contains(t, err.Error(), "max_throttle_wait")
			for _, d := range w.list() {
				require.Positive(t, d, "no negative waits")
			}
			// "-5" is unusable: the 30 s default applies, 4 times within 2 minutes.
			require.LessOrEqual(t, len(w.list()), 4)
			require.LessOrEqual(t, sim.Requests("GET /api/connector/dequeue/a1"), 5)
		})
	}
}

func TestAnswerIsReadWithASizeCap(t *testing.T) {
	t.Parallel()
	sim, simBase := finopssim.StartTest(t, finopssim.Config{})
	var served int64
	var mu sync.Mutex
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"CorrelationId":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for i := 0; i < 1<<14; i++ { // up to 1 GiB, unless the client hangs up
			if _, err := w.Write(chunk); err != nil {
				return
			}
			mu.Lock()
			served += int64(len(chunk))
			mu.Unlock()
		}
	}))
	t.Cleanup(endless.Close)
	id, secret := sim.Credentials()
	c, err := finops.New(finops.Config{BaseURL: endless.URL, TokenURL: finopssim.TokenURL(simBase), ClientID: id, ClientSecret: secret,
		MaxAnswerBytes: 1 << 20}, zerolog.Nop())
	require.NoError(t, err)
	_, err = c.Do(context.Background(), dequeueReq("a1"))
	require.ErrorIs(t, err, finops.ErrTooLarge)
	require.Contains(t, err.Error(), "max_answer_bytes")
	mu.Lock()
	defer mu.Unlock()
	require.Less(t, served, int64(64<<20), "the client stops reading at the cap")
}

func TestODataMessageIsCutToAnExcerpt(t *testing.T) {
	t.Parallel()
	sim, simBase := finopssim.StartTest(t, finopssim.Config{})
	huge := strings.Repeat("x", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":"c","message":"An error has occurred.","innererror":{"message":"` + huge + `"}}}`))
	}))
	t.Cleanup(srv.Close)
	id, secret := sim.Credentials()
	c, err := finops.New(finops.Config{BaseURL: srv.URL, TokenURL: finopssim.TokenURL(simBase), ClientID: id, ClientSecret: secret}, zerolog.Nop())
	require.NoError(t, err)
	_, err = c.Do(context.Background(), dequeueReq("a1"))
	require.Error(t, err)
	require.Less(t, len(err.Error()), 12<<10)
}
