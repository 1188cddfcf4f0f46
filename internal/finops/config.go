package finops

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/conf"
	"github.com/exportbridge/exportbridge/internal/redact"
)

// Config describes one FinOps environment ([connections.NAME] in config.toml).
type Config struct {
	// BaseURL is the environment's root, e.g. https://usmf.operations.dynamics.com.
	BaseURL string `koanf:"base_url"`
	// TokenURL is the Entra ID token endpoint; a v1 endpoint (…/oauth2/token)
	// is sent `resource`, a v2 endpoint (…/oauth2/v2.0/token) `scope`.
	TokenURL     string `koanf:"token_url"`
	ClientID     string `koanf:"client_id"`
	ClientSecret string `koanf:"client_secret" secret:"true"`
	// Scope defaults to BaseURL + "/.default" (v2 endpoints only).
	Scope string `koanf:"scope"`
	// UnreadyAfter: /readyz reports the connection unready after this many
	// calls in a row failed because of it (no answer, token refused,
	// 401/403, 5xx after retries). Default 3.
	UnreadyAfter int `koanf:"unready_after"`
	// Timeout bounds one API call (not downloads). Default 60s.
	Timeout time.Duration `koanf:"timeout"`
	// DownloadTimeout bounds one package download. Default 60m: packages can be
	// large and the connector download has been seen to stall (RIS uses 60m).
	DownloadTimeout time.Duration `koanf:"download_timeout"`
	// MaxDownloadBytes refuses downloads larger than this. Default 4 GiB.
	MaxDownloadBytes int64 `koanf:"max_download_bytes"`
	// MaxAttempts is how many times one call is tried on 5xx, timeouts and
	// connection errors. Throttling (429/503 with Retry-After) waits do not
	// count against it but are bounded by MaxThrottleWait. Default 5.
	MaxAttempts int `koanf:"max_attempts"`
	// RetryBase and RetryMax shape the exponential backoff. Defaults 1s and 30s.
	RetryBase time.Duration `koanf:"retry_base"`
	RetryMax  time.Duration `koanf:"retry_max"`
	// MaxThrottleWait bounds the total time spent obeying Retry-After in one
	// call. Default 10m.
	MaxThrottleWait time.Duration `koanf:"max_throttle_wait"`
	// MaxAnswerBytes bounds one API answer (JSON), which is read whole.
	// Default 4 MiB; real answers are a few KB.
	MaxAnswerBytes int64 `koanf:"max_answer_bytes"`
	// DownloadHosts are further hosts ("host" or "host:port", with the
	// scheme of base_url) trusted with the bearer token for a message's
	// DownloadLocation, e.g. a proxy in front of FinOps. By default the token
	// goes only to base_url's scheme, host and port.
	DownloadHosts []string `koanf:"download_hosts"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.UnreadyAfter == 0 {
		c.UnreadyAfter = 3
	}
	if c.Scope == "" && c.BaseURL != "" && !c.IsV1Token() {
		c.Scope = c.BaseURL + "/.default"
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = 60 * time.Minute
	}
	if c.MaxDownloadBytes == 0 {
		c.MaxDownloadBytes = 4 << 30
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.MaxThrottleWait == 0 {
		c.MaxThrottleWait = 10 * time.Minute
	}
	if c.MaxAnswerBytes == 0 {
		c.MaxAnswerBytes = 4 << 20
	}
	return c
}

// IsV1Token reports whether TokenURL is an Azure AD v1.0 endpoint, which takes
// `resource` instead of `scope`.
func (c Config) IsV1Token() bool {
	return strings.HasSuffix(strings.TrimRight(c.TokenURL, "/"), "/oauth2/token")
}

// Validate reports every problem, keyed relative to the connection's table.
func (c Config) Validate() conf.Problems {
	var ps conf.Problems
	if c.UnreadyAfter < 1 {
		ps.Add("unready_after", "must be at least 1")
	}
	checkURL(&ps, "base_url", c.BaseURL)
	checkURL(&ps, "token_url", c.TokenURL)
	if c.ClientID == "" {
		ps.Add("client_id", "is required")
	}
	if c.ClientSecret == "" {
		ps.Add("client_secret", "is required (literal, env:NAME, or client_secret_file)")
	}
	for key, d := range map[string]time.Duration{"timeout": c.Timeout, "download_timeout": c.DownloadTimeout,
		"retry_base": c.RetryBase, "retry_max": c.RetryMax, "max_throttle_wait": c.MaxThrottleWait} {
		if d < 0 {
			ps.Add(key, "must not be negative")
		}
	}
	if c.MaxAttempts < 0 {
		ps.Add("max_attempts", "must not be negative")
	}
	if c.MaxDownloadBytes < 0 {
		ps.Add("max_download_bytes", "must not be negative")
	}
	if c.MaxAnswerBytes < 0 {
		ps.Add("max_answer_bytes", "must not be negative")
	}
	for i, h := range c.DownloadHosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			ps.Add(conf.Join("download_hosts", "["+strconv.Itoa(i)+"]"), "must be a host or host:port, got %q", redact.Excerpt(h, 100))
		}
	}
	return ps
}

func checkURL(ps *conf.Problems, key, raw string) {
	if raw == "" {
		ps.Add(key, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add(key, "must be an absolute http(s) URL, got %q", redact.URL(raw))
	}
}
