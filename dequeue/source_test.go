package dequeue_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dequeue"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

const activity = "5f0c5b0e-0000-4000-8000-000000000001"

func newSource(t *testing.T, sim *finopssim.Server, base string, opts ...finops.Option) *dequeue.Source {
	t.Helper()
	id, secret := sim.Credentials()
	c, err := finops.New(finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret}, zerolog.Nop(), opts...)
	require.NoError(t, err)
	return dequeue.New(c, "{"+activity+"}")
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestDrainUntilEmpty(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	want := map[string]string{} // CorrelationId → sha of the package
	for range 3 {
		p, id := sim.EnqueueSample(activity)
		want[id] = sha(p.Zip())
	}
	src := newSource(t, sim, base)
	ctx := context.Background()
	got := map[string]string{}
	for {
		m, err := src.Dequeue(ctx)
		require.NoError(t, err)
		if m == nil {
			break
		}
		require.Nil(t, m.LastDequeueDateTime, "a first delivery has no LastDequeueDateTime")
		require.NotEmpty(t, m.BlobID)
		dl, err := src.Download(ctx, m, t.TempDir(), nil)
		require.NoError(t, err)
		data, err := os.ReadFile(dl.Path)
		require.NoError(t, err)
		require.Equal(t, sha(data), dl.SHA256)
		require.Equal(t, int64(len(data)), dl.Size)
		got[m.CorrelationID] = dl.SHA256
		require.NoError(t, src.Ack(ctx, m))
	}
	require.Equal(t, want, got)
	for _, st := range sim.Messages(activity) {
		require.True(t, st.Acked)
		require.Equal(t, 1, st.Dequeues)
	}
}

func TestUnackedMessageIsRedeliveredAfterVisibilityTimeout(t *testing.T) {
	t.Parallel()
	clock := finopssim.NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	sim, base := finopssim.StartTest(t, finopssim.Config{Now: clock.Now})
	_, id := sim.EnqueueSample(activity)
	src := newSource(t, sim, base, finops.WithClock(clock.Now))
	ctx := context.Background()

	first, err := src.Dequeue(ctx)
	require.NoError(t, err)
	require.Equal(t, id, first.CorrelationID)

	none, err := src.Dequeue(ctx)
	require.NoError(t, err)
	require.Nil(t, none, "hidden while its visibility timeout runs")

	clock.Advance(29 * time.Minute)
	none, err = src.Dequeue(ctx)
	require.NoError(t, err)
	require.Nil(t, none)

	clock.Advance(2 * time.Minute)
	again, err := src.Dequeue(ctx)
	require.NoError(t, err)
	require.NotNil(t, again)
	require.Equal(t, first.CorrelationID, again.CorrelationID)
	require.Equal(t, first.BlobID, again.BlobID)
	require.NotEmpty(t, again.LastDequeueDateTime, "FinOps marks a redelivery")

	// The first receipt is stale now; the latest one acknowledges.
	err = src.Ack(ctx, first)
	require.True(t, finops.IsStatus(err, http.StatusBadRequest), "got %v", err)
	require.NoError(t, src.Ack(ctx, again))
	require.True(t, sim.Messages(activity)[0].Acked)
}

func TestAckSendsTheDequeueBodyUnchanged(t *testing.T) {
	t.Parallel()
	var acked []byte
	mux := http.NewServeMux()
	mux.HandleFunc("POST /t/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token_type":"Bearer","access_token":"x","expires_in":3600}`))
	})
	body := `{"CorrelationId":"c1","PopReceipt":"p1","DownloadLocation":"http://h/api/connector/download/%7Ba%7D?correlation-id=c1&blob=%7Bb1%7D","IsDownLoadFileExist":false,"FileDownLoadErrorMessage":"The file was deleted","LastDequeueDateTime":"2026-11-23T09:00:00Z","Extra":1}`
	mux.HandleFunc("GET /api/connector/dequeue/{a}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
	mux.HandleFunc("POST /api/connector/ack/{a}", func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		acked, _ = readAll(r)
	})
	base := startHTTP(t, mux)
	c, err := finops.New(finops.Config{BaseURL: base, TokenURL: base + "/t/oauth2/v2.0/token", ClientID: "i", ClientSecret: "s"}, zerolog.Nop())
	require.NoError(t, err)
	src := dequeue.New(c, "a")
	m, err := src.Dequeue(context.Background())
	require.NoError(t, err)
	require.Equal(t, "b1", m.BlobID)
	require.NotEmpty(t, m.LastDequeueDateTime, "FinOps marks a redelivery")
	reason, missing := m.FileMissing()
	require.True(t, missing)
	require.Equal(t, "The file was deleted", reason)
	require.NoError(t, src.Ack(context.Background(), m))
	require.JSONEq(t, body, string(acked))
}

func TestDownloadURLRewritesHTTPOnlyForHTTPSEnvironments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, loc, want string }{
		{"https://usmf.operations.dynamics.com", "http://usmf.operations.dynamics.com:80/api/connector/download/%7Ba%7D?blob=b", "https://usmf.operations.dynamics.com/api/connector/download/%7Ba%7D?blob=b"},
		{"https://usmf.operations.dynamics.com", "https://usmf.operations.dynamics.com/api/x?blob=b", "https://usmf.operations.dynamics.com/api/x?blob=b"},
		{"http://127.0.0.1:8089", "http://127.0.0.1:8089/api/x?blob=b", "http://127.0.0.1:8089/api/x?blob=b"},
	} {
		c, err := finops.New(finops.Config{BaseURL: tc.base, TokenURL: "https://login.example/t/oauth2/v2.0/token", ClientID: "i", ClientSecret: "s"}, zerolog.Nop())
		require.NoError(t, err)
		require.Equal(t, tc.want, dequeue.New(c, "a").DownloadURL(&dequeue.Message{DownloadLocation: tc.loc}))
	}
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	_, id := sim.EnqueueSample(activity)
	src := newSource(t, sim, base)
	ctx := context.Background()
	m, err := src.Dequeue(ctx)
	require.NoError(t, err)
	st, err := src.JobStatus(ctx, `"`+id+`"`)
	require.NoError(t, err)
	require.Equal(t, dequeue.StateDequeued, st.DataJobStatus.DataJobState)
	require.NoError(t, src.Ack(ctx, m))
	st, err = src.JobStatus(ctx, id)
	require.NoError(t, err)
	require.Equal(t, dequeue.StateAcked, st.DataJobStatus.DataJobState)
}

func TestJobStateDecodesNumbersAndNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]dequeue.JobState{`5`: dequeue.StateProcessed, `"ProcessedWithErrors"`: dequeue.StateProcessedWithErrors, `"acked"`: dequeue.StateAcked} {
		var s dequeue.JobState
		require.NoError(t, json.Unmarshal([]byte(in), &s), in)
		require.Equal(t, want, s)
	}
	var s dequeue.JobState
	require.Error(t, json.Unmarshal([]byte(`"Bogus"`), &s))
	require.True(t, dequeue.StatePreProcessError.Terminal())
	require.False(t, dequeue.StateInProcess.Terminal())
}
