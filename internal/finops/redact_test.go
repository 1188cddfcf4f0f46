package finops

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://acct.blob.core.windows.net/dmf/p.zip?sv=2014-02-14&sig=abc%2Bdef&se=2026", "https://acct.blob.core.windows.net/dmf/p.zip?se=2026&sig=REDACTED&sv=2014-02-14"},
		{"https://fn.example/api/x?code=k3y", "https://fn.example/api/x?code=REDACTED"},
		{"http://127.0.0.1:8080/files/a/b.json?expires=1&signature=zz", "http://127.0.0.1:8080/files/a/b.json?expires=1&signature=REDACTED"},
		{"https://user:pw@host/x", "https://user:REDACTED@host/x"},
		{"https://host/plain?entity=Customer%20groups", "https://host/plain?entity=Customer%20groups"},
		{"https://host/no-query", "https://host/no-query"},
		{"://bad\x7f?sig=secret", "://bad\x7f?REDACTED"},
	} {
		require.Equal(t, tc.want, RedactURL(tc.in), tc.in)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	lo := func() float64 { return 0 }
	hi := func() float64 { return 0.999999 }
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		require.Equal(t, want/2, backoff(n+1, time.Second, 10*time.Second, lo), "n=%d", n+1)
		require.InDelta(t, float64(want), float64(backoff(n+1, time.Second, 10*time.Second, hi)), float64(time.Millisecond))
	}
}
