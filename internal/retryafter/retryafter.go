// Package retryafter reads the HTTP Retry-After header, which both the
// FinOps client (429/503 from FinOps) and the publisher (429/503 from
// subscribers) obey.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads Retry-After (delta-seconds or HTTP-date) relative to now. ok
// is false when the header is absent or unusable; a date in the past is
// (0, true): retry now.
func Parse(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}
