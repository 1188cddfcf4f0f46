package publish

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sign returns the Standard Webhooks signature header value for a message:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key, space-separated
// (several while a receiver rotates keys).
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	sigs := make([]string, 0, len(keys))
	ts := strconv.FormatInt(timestamp, 10)
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadSignature = errors.New("webhook: no signature matches")
	ErrTimestamp    = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a request's Standard Webhooks headers against keys: at
// least one v1 signature must match one key, and the timestamp must be
// within tolerance of now (replay protection; 0 skips the check).
func Verify(keys [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return ErrTimestamp
		}
	}
	for _, k := range keys {
		want := Sign([][]byte{k}, id, sec, body)
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// Keys returns the subscription's decoded signing keys.
func (s *Subscription) Keys() [][]byte { return s.keys }
