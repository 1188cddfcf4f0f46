package finops

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// Sentinel errors for errors.Is.
var (
	// ErrThrottled: FinOps kept answering 429/503 past MaxThrottleWait.
	ErrThrottled = errors.New("finops: throttled")
	// ErrUnauthorized: the token was refused even after fetching a new one.
	ErrUnauthorized = errors.New("finops: unauthorized")
	// ErrTruncated: a download ended before its announced length.
	ErrTruncated = errors.New("finops: download truncated")
	// ErrTooLarge: a download exceeded MaxDownloadBytes, or an answer
	// MaxAnswerBytes.
	ErrTooLarge = errors.New("finops: too large")
	// ErrForeignHost: a URL that would carry the bearer token (a
	// DownloadLocation, a redirect) points outside the connection's base_url
	// and its download_hosts. The token goes only to FinOps.
	ErrForeignHost = errors.New("finops: refusing to send the FinOps token to another host")
)

// StatusError is a non-success HTTP answer from FinOps (or the blob store).
type StatusError struct {
	Op         string // e.g. "dequeue", "ExportToPackage"
	Method     string
	URL        string // redacted
	StatusCode int
	// Message is the most specific human text found in the body: OData
	// innererror.message, then error.message, then the raw body (trimmed).
	Message string
	Code    string // OData error.code, when present
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("finops %s: %s %s: HTTP %d: %s", e.Op, e.Method, e.URL, e.StatusCode, msg)
}

// Unwrap maps 401/403 to ErrUnauthorized so callers can test with errors.Is.
func (e *StatusError) Unwrap() error {
	if e.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	return nil
}

// IsStatus reports whether err is a StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == code
}

// odataError is the FinOps OData error envelope.
type odataError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"innererror"`
	} `json:"error"`
}

// maxErrorBody bounds how much of an error body is kept in a message.
const maxErrorBody = 2048

// parseErrorBody extracts the most useful message from an error body. FinOps
// puts the real reason in innererror.message behind a generic "An error has
// occurred.".
func parseErrorBody(body []byte) (code, msg string) {
	var oe odataError
	if json.Unmarshal(body, &oe) == nil && (oe.Error.Message != "" || oe.Error.InnerError != nil) {
		code = oe.Error.Code
		msg = oe.Error.Message
		if ie := oe.Error.InnerError; ie != nil && ie.Message != "" {
			msg = ie.Message
		}
		return redact.Excerpt(code, 200), redact.Excerpt(msg, maxErrorBody)
	}
	return "", redact.Excerpt(strings.TrimSpace(string(body)), maxErrorBody)
}
