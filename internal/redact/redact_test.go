package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://acct.blob.core.windows.net/dmf/p.zip?sv=2014-02-14&sig=abc%2Bdef&se=2026", "https://acct.blob.core.windows.net/dmf/p.zip?se=2026&sig=REDACTED&sv=2014-02-14"},
		{"https://fn.example/api/x?code=k3y", "https://fn.example/api/x?code=REDACTED"},
		{"http://127.0.0.1:8080/files/a/b.json?expires=1&signature=zz", "http://127.0.0.1:8080/files/a/b.json?expires=1&signature=REDACTED"},
		{"https://user:pw@host/x", "https://REDACTED@host/x"},
		{"https://tokenonly@host/x", "https://REDACTED@host/x"},
		{"https://host/x?Subscription-Key=s&X-Api-Key=k&id_token=t", "https://host/x?Subscription-Key=REDACTED&X-Api-Key=REDACTED&id_token=REDACTED"},
		{"https://host/plain?entity=Customer%20groups", "https://host/plain?entity=Customer%20groups"},
		{"https://host/no-query", "https://host/no-query"},
		{"://bad\x7f?sig=secret", "://bad\x7f?REDACTED"},
		{"https://u:p@bad\x7f/x?code=c", "https://REDACTED@bad\x7f/x?REDACTED"},
	} {
		got := redact.URL(tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestStringRedactsEveryURLInText(t *testing.T) {
	t.Parallel()
	in := `Post "https://alice:hunter2@hooks.example/in?code=SECRET1&x=1": dial tcp; then http://h/f?signature=SECRET2 and "ftp://x" done`
	got := redact.String(in)
	require.NotContains(t, got, "SECRET1")
	require.NotContains(t, got, "SECRET2")
	require.NotContains(t, got, "hunter2")
	require.NotContains(t, got, "alice")
	require.Contains(t, got, `Post "https://REDACTED@hooks.example/in?code=REDACTED&x=1": dial tcp`)
	require.Equal(t, "no urls here: a://", redact.String("no urls here: a://"))
	require.Equal(t, "://x", redact.String("://x"))
}

func TestErrorKeepsURLErrorTypeAndChain(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	ue := &url.Error{Op: "Post", URL: "https://u:p@h/x?code=SECRET", Err: cause}
	red := redact.Error(ue)
	require.NotContains(t, red.Error(), "SECRET")
	var got *url.Error
	require.ErrorAs(t, red, &got)
	require.ErrorIs(t, red, cause)

	wrapped := fmt.Errorf("sending: %w", ue)
	red = redact.Error(wrapped)
	require.NotContains(t, red.Error(), "SECRET")
	require.ErrorIs(t, red, cause)
	require.NoError(t, redact.Error(nil))
	plain := errors.New("plain")
	require.Same(t, plain, redact.Error(plain))
}

func TestExcerptBoundsOnARuneBoundary(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", redact.Excerpt("short", 10))
	long := strings.Repeat("é", 100) // 200 bytes
	got := redact.Excerpt(long, 11)
	require.True(t, strings.HasPrefix(got, strings.Repeat("é", 5)+"…"), got)
	require.Contains(t, got, "(200 bytes)")
	require.LessOrEqual(t, len(got), 11+len("… (200 bytes)"))
}

func TestWriterRedactsLogLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := redact.Writer(&buf)
	line := `{"level":"warn","error":"Post \"https://hooks.example/x?code=LEAK\": EOF","url":"http://a:b@h/"}` + "\n"
	n, err := w.Write([]byte(line))
	require.NoError(t, err)
	require.Equal(t, len(line), n)
	require.NotContains(t, buf.String(), "LEAK")
	require.NotContains(t, buf.String(), "a:b@")
	require.True(t, strings.HasSuffix(buf.String(), "\n"))
}
