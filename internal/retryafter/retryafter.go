// Package retryafter reads the HTTP Retry-After header, which both the
// FinOps client (429/503 from FinOps) and the publisher (429/503 from
// subscribers) obey.
package retryafter

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max is the longest wait Parse returns. A larger or overflowing value is
// clamped to it; callers then apply their own, smaller bound
// (max_throttle_wait, a subscription's max_retry_after).
const Max = 365 * 24 * time.Hour

// Parse reads Retry-After (delta-seconds or HTTP-date) relative to now. ok
// is false when the header is absent or unusable (negative, not a number or
// a date); a date in the past is (0, true): retry now. The result is never
// negative and never above Max, whatever the header says: a value such as
// 9223372037 seconds must not overflow into a negative wait.
func Parse(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		switch {
		case err == nil && secs <= uint64(Max/time.Second):
			return time.Duration(secs) * time.Second, true
		case err == nil, errors.Is(err, strconv.ErrRange):
			return Max, true
		}
		return 0, false
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), Max), true
	}
	return 0, false
}
