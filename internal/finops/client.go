package finops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/retryafter"
	"github.com/exportbridge/exportbridge/internal/version"
	"github.com/exportbridge/exportbridge/telemetry"
)

// Client talks to one FinOps environment.
type Client struct {
	cfg    Config
	api    *resty.Client // API calls, bounded by cfg.Timeout
	dl     *resty.Client // downloads, bounded by cfg.DownloadTimeout
	tokens *tokenSource
	// trusted are the origins the bearer token may be sent to.
	trusted map[string]bool
	log     zerolog.Logger
	wait    func(ctx context.Context, d time.Duration) error
	now     func() time.Time
	rand    func() float64
	health  health
	tracer  trace.Tracer
}

// Option adjusts a Client.
type Option func(*Client)

// WithTracerProvider traces each call as a span "finops.<op>" (default:
// none).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Client) { c.tracer = tp.Tracer("github.com/exportbridge/exportbridge/internal/finops") }
}

// span starts a call's span; end records its outcome.
func (c *Client) span(ctx context.Context, req Request) (context.Context, func(status int, bytes int64, err error)) {
	ctx, sp := c.tracer.Start(ctx, "finops."+req.Op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("finops.op", req.Op), attribute.String("http.request.method", req.Method)))
	return ctx, func(status int, bytes int64, err error) {
		if status != 0 {
			sp.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		if bytes > 0 {
			sp.SetAttributes(attribute.Int64("finops.bytes", bytes))
		}
		telemetry.End(sp, err)
	}
}

// WithWait replaces the function that waits between attempts, so tests can
// record the requested waits instead of sleeping.
func WithWait(wait func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) { c.wait = wait }
}

// WithClock replaces time.Now (token expiry, HTTP-date Retry-After).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithRand replaces the jitter source (returns values in [0,1)).
func WithRand(r func() float64) Option { return func(c *Client) { c.rand = r } }

// New returns a client for cfg (defaults applied by the caller or here).
func New(cfg Config, log zerolog.Logger, opts ...Option) (*Client, error) {
	cfg = cfg.WithDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("finops: invalid connection config: %w", ps)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	c := &Client{
		cfg:    cfg,
		log:    log.With().Str("component", "finops").Logger(),
		wait:   Sleep,
		now:    time.Now,
		rand:   defaultRand,
		tracer: noop.NewTracerProvider().Tracer(""),
	}
	for _, o := range opts {
		o(c)
	}
	newResty := func(timeout time.Duration) *resty.Client {
		r := resty.NewWithClient(&http.Client{Transport: transport, Timeout: timeout, CheckRedirect: checkRedirect})
		r.SetRetryCount(0) // this package owns retries
		r.SetLogger(restyLogger{})
		r.SetHeader("User-Agent", version.UserAgent())
		return r
	}
	c.trusted = trustedOrigins(cfg)
	c.api = newResty(cfg.Timeout)
	c.dl = newResty(cfg.DownloadTimeout)
	c.tokens = newTokenSource(cfg, &http.Client{Transport: transport, Timeout: cfg.Timeout}, func() time.Time { return c.now() })
	return c, nil
}

// BaseURL returns the environment's base URL without a trailing slash.
func (c *Client) BaseURL() string { return c.cfg.BaseURL }

// Request is one logical call.
type Request struct {
	Op     string // names the call in errors and logs
	Method string
	// Path is relative to BaseURL ("api/connector/dequeue/…") or an absolute URL.
	Path        string
	Query       url.Values
	JSON        any    // marshalled as the JSON body when non-nil
	Body        []byte // raw body, used when JSON is nil
	ContentType string
	NoAuth      bool // blob SAS URLs must not carry a bearer token
	// Progress, for downloads, is told the bytes received so far and the
	// announced total (-1 when unknown).
	Progress func(received, total int64)
}

// Response is a successful (2xx) answer.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Do performs req with authentication and retries; any non-2xx answer that
// is not retried comes back as a *StatusError.
func (c *Client) Do(ctx context.Context, req Request) (_ *Response, err error) {
	var out *Response
	ctx, end := c.span(ctx, req)
	defer func() {
		status, n := 0, int64(0)
		if out != nil {
			status, n = out.StatusCode, int64(len(out.Body))
		}
		end(status, n, err)
	}()
	err = c.retry(ctx, req, func(ctx context.Context, token string) (*http.Response, error) {
		r := c.api.R().SetContext(ctx).SetDoNotParseResponse(true)
		c.prepare(r, req, token)
		resp, err := r.Execute(req.Method, c.url(req.Path))
		if err != nil {
			return nil, err
		}
		hr := resp.RawResponse
		defer hr.Body.Close()
		if hr.StatusCode/100 != 2 {
			out = &Response{StatusCode: hr.StatusCode, Header: hr.Header, Body: readErrorBody(hr.Body)}
			return hr, nil
		}
		// An answer is read whole, so it is read with a cap: a body that
		// never ends must not take the process's memory with it.
		body, err := io.ReadAll(io.LimitReader(hr.Body, c.cfg.MaxAnswerBytes+1))
		if err != nil {
			return nil, err
		}
		if int64(len(body)) > c.cfg.MaxAnswerBytes {
			return nil, fmt.Errorf("%w: answer exceeds max_answer_bytes %d", ErrTooLarge, c.cfg.MaxAnswerBytes)
		}
		out = &Response{StatusCode: hr.StatusCode, Header: hr.Header, Body: body}
		return hr, nil
	}, func(hr *http.Response) []byte { return out.Body })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Download is a file fetched to disk.
type Download struct {
	Path   string
	Size   int64
	SHA256 string // hex
}

// Download streams the body of req to a new file in dir, computing its
// SHA-256. It refuses bodies over MaxDownloadBytes and detects truncation
// (fewer bytes than Content-Length). A failed download leaves no file.
func (c *Client) Download(ctx context.Context, req Request, dir string) (*Download, error) {
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	var dl *Download
	ctx, end := c.span(ctx, req)
	var err error
	defer func() {
		var n int64
		status := 0
		if dl != nil {
			n, status = dl.Size, http.StatusOK
		}
		end(status, n, err)
	}()
	err = c.retry(ctx, req, func(ctx context.Context, token string) (*http.Response, error) {
		r := c.dl.R().SetContext(ctx).SetDoNotParseResponse(true)
		c.prepare(r, req, token)
		resp, err := r.Execute(req.Method, c.url(req.Path))
		if err != nil {
			return nil, err
		}
		hr := resp.RawResponse
		if hr.StatusCode/100 != 2 {
			return hr, nil // body read by the error path
		}
		defer hr.Body.Close()
		d, err := c.save(hr, dir, req.Progress)
		if err != nil {
			return nil, err
		}
		dl = d
		return hr, nil
	}, func(hr *http.Response) []byte {
		defer hr.Body.Close()
		return readErrorBody(hr.Body)
	})
	if err != nil {
		return nil, err
	}
	return dl, nil
}

func (c *Client) save(hr *http.Response, dir string, progress func(received, total int64)) (_ *Download, err error) {
	if hr.ContentLength > c.cfg.MaxDownloadBytes {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds max_download_bytes %d", ErrTooLarge, hr.ContentLength, c.cfg.MaxDownloadBytes)
	}
	f, err := os.CreateTemp(dir, "download-*.part")
	if err != nil {
		return nil, fmt.Errorf("finops: create download file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	var w io.Writer = io.MultiWriter(f, h)
	if progress != nil {
		w = &progressWriter{w: w, total: hr.ContentLength, report: progress}
	}
	n, err := io.Copy(w, io.LimitReader(hr.Body, c.cfg.MaxDownloadBytes+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w after %d of %d bytes", ErrTruncated, n, hr.ContentLength)
		}
		return nil, fmt.Errorf("finops: reading download: %w", redact.Error(err))
	}
	if n > c.cfg.MaxDownloadBytes {
		return nil, fmt.Errorf("%w: more than max_download_bytes %d", ErrTooLarge, c.cfg.MaxDownloadBytes)
	}
	if hr.ContentLength >= 0 && n != hr.ContentLength {
		return nil, fmt.Errorf("%w after %d of %d bytes", ErrTruncated, n, hr.ContentLength)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("finops: sync download: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("finops: close download: %w", err)
	}
	final := strings.TrimSuffix(f.Name(), ".part") + ".bin"
	if err := os.Rename(f.Name(), final); err != nil {
		return nil, fmt.Errorf("finops: rename download: %w", err)
	}
	return &Download{Path: filepath.Clean(final), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// readErrorBody reads the start of a non-2xx answer's body, enough for the
// error message (parseErrorBody cuts it further).
func readErrorBody(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody*4))
	return b
}

// progressWriter reports bytes written as they pass.
type progressWriter struct {
	w      io.Writer
	n      int64
	total  int64
	report func(received, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.report(p.n, p.total)
	return n, err
}

func (c *Client) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return c.cfg.BaseURL + "/" + strings.TrimLeft(path, "/")
}

func (c *Client) prepare(r *resty.Request, req Request, token string) {
	if token != "" {
		r.SetAuthToken(token)
	}
	if req.Query != nil {
		r.SetQueryParamsFromValues(req.Query)
	}
	switch {
	case req.JSON != nil:
		r.SetHeader("Content-Type", "application/json")
		r.SetBody(req.JSON)
	case req.Body != nil:
		ct := req.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		r.SetHeader("Content-Type", ct)
		r.SetBody(req.Body)
	}
}

// attemptFunc makes one HTTP attempt. It returns the response (whose status
// decides what happens next) or a transport error.
type attemptFunc func(ctx context.Context, token string) (*http.Response, error)

// retry runs attempts under the retry policy: 401 → new token, once;
// 429/503 → wait Retry-After (not counted as an attempt, bounded by
// MaxThrottleWait); other 5xx, timeouts, connection errors and truncated
// downloads → capped exponential backoff up to MaxAttempts. errBody reads
// the body of a non-2xx response for the error message.
func (c *Client) retry(ctx context.Context, req Request, attempt attemptFunc, errBody func(*http.Response) []byte) (err error) {
	defer func() { c.health.record(ctx, err, c.now()) }()
	target := redact.URL(c.url(req.Path))
	if !req.NoAuth {
		if err := c.checkTokenTarget(c.url(req.Path)); err != nil {
			return fmt.Errorf("finops %s: %w", req.Op, err)
		}
	}
	failures, throttled := 0, time.Duration(0)
	reauthed := false
	for {
		token := ""
		if !req.NoAuth {
			t, err := c.tokens.token(ctx)
			if err != nil {
				var te *TokenError
				if errors.As(err, &te) && te.retryable() && ctx.Err() == nil {
					failures++
					if failures < c.cfg.MaxAttempts {
						if werr := c.pause(ctx, req, backoff(failures, c.cfg.RetryBase, c.cfg.RetryMax, c.rand), err); werr != nil {
							return werr
						}
						continue
					}
				}
				return err
			}
			token = t
		}
		actx, cancel := context.WithCancel(ctx)
		hr, err := attempt(actx, token)
		var body []byte
		status := 0
		if err == nil && hr.StatusCode/100 != 2 {
			status = hr.StatusCode
			body = errBody(hr)
		}
		cancel()
		if err == nil && status == 0 {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("finops %s: %w", req.Op, ctx.Err())
			}
			err = fmt.Errorf("finops %s: %w", req.Op, redact.Error(err))
			if !transient(err) {
				return err
			}
			failures++
			if failures >= c.cfg.MaxAttempts {
				return fmt.Errorf("%w (gave up after %d attempts)", err, failures)
			}
			if werr := c.pause(ctx, req, backoff(failures, c.cfg.RetryBase, c.cfg.RetryMax, c.rand), err); werr != nil {
				return werr
			}
			continue
		}
		code, msg := parseErrorBody(body)
		serr := &StatusError{Op: req.Op, Method: req.Method, URL: target, StatusCode: status, Message: msg, Code: code}
		switch {
		case status == http.StatusUnauthorized && !req.NoAuth && !reauthed:
			reauthed = true
			c.tokens.invalidate(token)
			c.log.Debug().Str("op", req.Op).Msg("token refused, fetching a new one")
			continue
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			d, ok := retryafter.Parse(hr.Header, c.now())
			if !ok {
				d = defaultRetryAfter
			}
			if d > c.cfg.MaxThrottleWait-throttled {
				return fmt.Errorf("%w: Retry-After %s would exceed max_throttle_wait %s (waited %s already): %w",
					ErrThrottled, d, c.cfg.MaxThrottleWait, throttled, serr)
			}
			throttled += d
			if werr := c.pause(ctx, req, d, serr); werr != nil {
				return werr
			}
		case status >= 500 || status == http.StatusRequestTimeout:
			failures++
			if failures >= c.cfg.MaxAttempts {
				return fmt.Errorf("%w (gave up after %d attempts)", serr, failures)
			}
			if werr := c.pause(ctx, req, backoff(failures, c.cfg.RetryBase, c.cfg.RetryMax, c.rand), serr); werr != nil {
				return werr
			}
		default:
			return serr
		}
	}
}

func (c *Client) pause(ctx context.Context, req Request, d time.Duration, cause error) error {
	c.log.Warn().Str("op", req.Op).Dur("retry_in", d).Err(cause).Msg("retrying FinOps call")
	if err := c.wait(ctx, d); err != nil {
		return fmt.Errorf("finops %s: %w (while waiting to retry after: %w)", req.Op, err, cause)
	}
	return nil
}

// transient reports whether a transport-level failure may succeed if tried
// again: timeouts, refused or reset connections, truncated bodies.
func transient(err error) bool {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrForeignHost) {
		return false
	}
	if errors.Is(err, ErrTruncated) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection reset")
}

// restyLogger silences resty's own logging: this package logs what matters
// with context, and resty's messages can contain full URLs.
type restyLogger struct{}

func (restyLogger) Errorf(string, ...any) {}
func (restyLogger) Warnf(string, ...any)  {}
func (restyLogger) Debugf(string, ...any) {}
