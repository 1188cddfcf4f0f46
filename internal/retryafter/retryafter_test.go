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
		// Huge values clamp instead of overflowing into a negative wait.
		{"9223372037", Max, true},
		{"99999999999999999999999", Max, true},
		{"31536001", Max, true},
		{"31536000", Max, true},
		{"1e9", 0, false},
		{"5s", 0, false},
		{"Fri, 31 Dec 9999 23:59:59 GMT", Max, true},
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

func FuzzParse(f *testing.F) {
	for _, s := range []string{"5", "-1", "9223372037", "Mon, 23 Nov 2026 10:00:45 GMT", "x"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, _ := Parse(http.Header{"Retry-After": {v}}, now)
		if d < 0 || d > Max {
			t.Fatalf("Parse(%q) = %v, outside [0, Max]", v, d)
		}
	})
}
