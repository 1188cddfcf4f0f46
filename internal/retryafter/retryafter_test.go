package retryafter

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{"Mon, 23 Nov 2026 10:00:45 GMT", 45 * time.Second, true},
		{"Mon, 23 Nov 2026 09:00:00 GMT", 0, true},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		got, ok := Parse(h, now)
		require.Equal(t, tc.ok, ok, tc.v)
		require.Equal(t, tc.want, got, tc.v)
	}
}
