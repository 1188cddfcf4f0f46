package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/retryafter"
	"github.com/exportbridge/exportbridge/internal/version"
)

// SendError is a failed attempt. Retryable says whether the same delivery
// may succeed later; Gone (HTTP 410) asks for the subscription to be paused.
type SendError struct {
	Status     int           // 0 when no response arrived
	RetryAfter time.Duration // from Retry-After, 0 when absent
	Retryable  bool
	Gone       bool
	Err        error
}

func (e *SendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

// Request is one attempt to send an event to a subscription. The
// CloudEvents attributes come from the stored event as they are.
type Request struct {
	Sub     *Subscription
	EventID string
	CEType  string
	Source  string
	Subject string
	Time    time.Time // event time
	Attempt int
	Body    []byte
	Now     time.Time // the attempt's time, signed as webhook-timestamp
	// TraceParent and TraceState, when set, go as the W3C traceparent and
	// tracestate headers (the CloudEvents distributed-tracing extension's,
	// in binary mode), so the receiver continues the trace.
	TraceParent, TraceState string
}

// Sender makes exactly one HTTP attempt per call; retrying is the
// publisher's job, driven by the stored retry state.
type Sender struct {
	client *resty.Client
}

// NewSender returns a Sender with its own connection pool.
func NewSender() *Sender {
	c := resty.New()
	c.SetRetryCount(0)
	c.SetLogger(quietLogger{})
	// A webhook answer of 3xx is not success and must not be followed to a
	// place the subscriber did not configure: the 3xx itself is the answer,
	// and it dead-letters with its status.
	c.SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }))
	c.SetTransport(&http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second})
	return &Sender{client: c}
}

const maxResponseBody = 64 << 10

// maxExcerpt bounds the response excerpt kept with an attempt.
const maxExcerpt = 1024

// Response is what an attempt got back.
type Response struct {
	Status  int    // 0 when no response arrived
	Excerpt string // the start of the body (at most 1 KB, URLs redacted)
}

// Send makes one attempt and returns what came back; a nil error means
// delivered.
func (s *Sender) Send(ctx context.Context, r Request) (Response, error) {
	status, text, err := s.send(ctx, r)
	return Response{Status: status, Excerpt: excerpt(text)}, err
}

// excerpt is the start of a response body as an attempt's record keeps it.
func excerpt(b []byte) string {
	if len(b) > maxExcerpt {
		b = b[:maxExcerpt]
	}
	return redact.String(strings.ToValidUTF8(string(b), "�"))
}

func (s *Sender) send(ctx context.Context, r Request) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Sub.Timeout)
	defer cancel()
	req := s.client.R().SetContext(ctx).SetDoNotParseResponse(true).SetBody(r.Body)
	for k, v := range r.Sub.Headers {
		req.SetHeader(k, v)
	}
	req.SetHeaders(map[string]string{
		"Content-Type":         "application/json",
		"User-Agent":           version.UserAgent(),
		"webhook-id":           r.EventID,
		"webhook-timestamp":    strconv.FormatInt(r.Now.Unix(), 10),
		"ce-specversion":       "1.0",
		"ce-id":                r.EventID,
		"ce-source":            r.Source,
		"ce-type":              r.CEType,
		"ce-subject":           r.Subject,
		"ce-time":              r.Time.UTC().Format(time.RFC3339Nano),
		"exportbridge-attempt": strconv.Itoa(r.Attempt),
	})
	if len(r.Sub.keys) > 0 {
		req.SetHeader("webhook-signature", Sign(r.Sub.keys, r.EventID, r.Now.Unix(), r.Body))
	}
	if r.TraceParent != "" {
		req.SetHeader("traceparent", r.TraceParent)
		if r.TraceState != "" {
			req.SetHeader("tracestate", r.TraceState)
		}
	}
	resp, err := req.Post(r.Sub.URL)
	if err != nil {
		// Timeouts, refused and reset connections: the target may be back soon.
		return 0, nil, &SendError{Retryable: true, Err: redact.Error(err)}
	}
	body := resp.RawBody()
	defer body.Close()
	text, _ := io.ReadAll(io.LimitReader(body, maxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20)) // reuse the connection
	status := resp.StatusCode()
	switch {
	case status >= 200 && status < 300:
		if r.Sub.SuccessBody != "" && !strings.Contains(string(text), r.Sub.SuccessBody) {
			return status, text, &SendError{Status: status, Retryable: true, Err: fmt.Errorf("response lacks success_body %q: %.200s", r.Sub.SuccessBody, text)}
		}
		return status, text, nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return status, text, &SendError{Status: status, Retryable: true, RetryAfter: retryAfterOf(resp.Header(), r.Now), Err: errors.New(snippet(text))}
	case status == http.StatusGone:
		return status, text, &SendError{Status: status, Gone: true, Err: errors.New("target is gone; subscription paused: " + snippet(text))}
	case status >= 300 && status < 400:
		return status, text, &SendError{Status: status, Err: fmt.Errorf("redirect to %q not followed: a subscription's url must be the target itself",
			redact.URL(resp.Header().Get("Location")))}
	default:
		return status, text, &SendError{Status: status, Err: errors.New(snippet(text))}
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// retryAfterOf is the subscriber's Retry-After, 0 when absent.
func retryAfterOf(h http.Header, now time.Time) time.Duration {
	d, _ := retryafter.Parse(h, now)
	return d
}

type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}
