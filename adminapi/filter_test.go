package adminapi_test

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/store"
)

func TestFilterFrom(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		query string
		want  store.Filter
		bad   string // the key the error names
	}{
		{"", store.Filter{}, ""},
		{"state=dead&subscription=flow&job=j&entity=Customer+groups", store.Filter{State: "dead", Subscription: "flow", Job: "j", Entity: "Customer groups"}, ""},
		{"since=2026-11-28T09:00:00Z&until=2026-11-28T10:00:00%2B01:00&before=42&limit=10",
			store.Filter{Since: since, Until: since, Before: 42, Limit: 10}, ""},
		{"state=lost", store.Filter{}, "state"},
		{"since=yesterday", store.Filter{}, "since"},
		{"until=2026-11-28", store.Filter{}, "until"},
		{"before=0", store.Filter{}, "before"},
		{"before=-3", store.Filter{}, "before"},
		{"limit=10001", store.Filter{}, "limit"},
		{"limit=x", store.Filter{}, "limit"},
	}
	for _, tc := range tests {
		q, err := url.ParseQuery(tc.query)
		require.NoError(t, err)
		f, err := adminapi.FilterFrom(q)
		if tc.bad != "" {
			require.ErrorIs(t, err, adminapi.ErrInvalid, tc.query)
			require.Contains(t, err.Error(), tc.bad, tc.query)
			continue
		}
		require.NoError(t, err, tc.query)
		require.True(t, f.Since.Equal(tc.want.Since) && f.Until.Equal(tc.want.Until), tc.query)
		f.Since, f.Until, tc.want.Since, tc.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		require.Equal(t, tc.want, f, tc.query)
	}
}

// FuzzFilterFrom: any query string gives a filter within bounds or
// ErrInvalid, never a panic.
func FuzzFilterFrom(f *testing.F) {
	for _, s := range []string{"state=dead", "since=2026-11-28T09:00:00Z&before=9", "limit=0", "before=%00", "until=9999-99-99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := adminapi.FilterFrom(q)
		if err != nil {
			if !errors.Is(err, adminapi.ErrInvalid) {
				t.Fatalf("%q: %v is not ErrInvalid", raw, err)
			}
			return
		}
		if flt.Limit < 0 || flt.Limit > 10000 || flt.Before < 0 {
			t.Fatalf("%q: out of bounds: %+v", raw, flt)
		}
		switch flt.State {
		case "", store.StatePending, store.StateInFlight, store.StateDelivered, store.StateDead:
		default:
			t.Fatalf("%q: state %q passed", raw, flt.State)
		}
	})
}
