package publish

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/exportbridge/exportbridge/internal/conf"
)

// DefaultRetry is the delay list when a subscription sets none: five
// attempts over about 90 seconds, then dead letter.
var DefaultRetry = []time.Duration{3 * time.Second, 12 * time.Second, 27 * time.Second, 48 * time.Second}

// SubscriptionConfig is one [[subscriptions]] entry.
type SubscriptionConfig struct {
	Name string `koanf:"name"`
	URL  string `koanf:"url" secret:"true"` // may carry a key in its query (?code=…)
	// Topics are hierarchical patterns: "dataexport" matches every topic
	// under it, "*" matches one segment. Default ["dataexport"].
	Topics []string `koanf:"topics"`
	// Entities limits DataExportCompleted events to these entity names
	// (case-insensitive); empty means all. DataExportFailed events are
	// always delivered.
	Entities []string `koanf:"entities"`
	// Secret holds Standard Webhooks keys ("whsec_<base64>"). Several keys
	// sign with each, so receivers can rotate. Empty: unsigned.
	Secret []string `koanf:"secret" secret:"true"`
	// Headers are added to every request (values may be env:NAME).
	Headers map[string]string `koanf:"headers" secret:"true"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration `koanf:"timeout"`
	// Retry lists the delays between attempts; attempts = len(Retry)+1.
	Retry []time.Duration `koanf:"retry"`
	// SuccessBody, when set, must appear in a 2xx response body for the
	// attempt to count as delivered (for receivers that answer 200 to errors).
	SuccessBody string `koanf:"success_body"`
	// MaxInFlight bounds concurrent attempts to this subscription. Default 4.
	MaxInFlight int `koanf:"max_in_flight"`
	// MaxRetryAfter caps how long a receiver's Retry-After may postpone the
	// next attempt. Default 1h.
	MaxRetryAfter time.Duration `koanf:"max_retry_after"`
	// BreakerThreshold is how many consecutive failed attempts (no answer,
	// 408, 429, 5xx) open the subscription's circuit: its due deliveries then
	// wait, spending no attempts, while one probe attempt goes out at growing
	// intervals; the first success closes it. Default 5; -1 disables.
	BreakerThreshold int `koanf:"breaker_threshold"`
	// BreakerInterval is the wait before the first probe; it doubles after
	// each failed probe up to BreakerMaxInterval. Defaults 5s and 5m.
	BreakerInterval    time.Duration `koanf:"breaker_interval"`
	BreakerMaxInterval time.Duration `koanf:"breaker_max_interval"`
	// Filter is a CEL expression an event must satisfy, over event (its
	// body), topic, type, source and subject: for example
	// `event.data.amount > 100` for a raised event. Empty: every event on
	// the topics.
	Filter string `koanf:"filter"`
	// MaxPerSecond caps attempts per second to this target (0: no cap).
	MaxPerSecond float64 `koanf:"max_per_second"`
	// Supersede: when a newer snapshot of an entity (DataExportCompleted)
	// commits while an older one's delivery here is still pending (the
	// target was down, the subscription paused), the older delivery is
	// superseded and not sent, so a flow never applies an older snapshot
	// after a newer one. Change events are never superseded.
	Supersede bool `koanf:"supersede"`
}

// WithDefaults fills zero fields.
func (c SubscriptionConfig) WithDefaults() SubscriptionConfig {
	if len(c.Topics) == 0 {
		c.Topics = []string{"dataexport"}
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Retry == nil {
		c.Retry = append([]time.Duration(nil), DefaultRetry...)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = time.Hour
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	if c.BreakerInterval == 0 {
		c.BreakerInterval = 5 * time.Second
	}
	if c.BreakerMaxInterval == 0 {
		c.BreakerMaxInterval = 5 * time.Minute
	}
	return c
}

// Validate reports problems keyed relative to the subscription's table.
func (c SubscriptionConfig) Validate() conf.Problems {
	var ps conf.Problems
	if c.Name == "" {
		ps.Add("name", "is required")
	} else if !ValidName(c.Name) {
		ps.Add("name", "%q may contain only letters, digits, '-', '_' and '.'", c.Name)
	}
	if c.URL == "" {
		ps.Add("url", "is required")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add("url", "must be an absolute http(s) URL")
	}
	for i, t := range c.Topics {
		if err := validPattern(t); err != nil {
			ps.Add(conf.Join("topics", "["+itoa(i)+"]"), "%v", err)
		}
	}
	for i, s := range c.Secret {
		if _, err := DecodeSecret(s); err != nil {
			ps.Add(conf.Join("secret", "["+itoa(i)+"]"), "%v", err)
		}
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			ps.Add(conf.Join("headers", k), "is not a valid header name")
		}
	}
	if c.Timeout <= 0 {
		ps.Add("timeout", "must be positive")
	}
	for i, d := range c.Retry {
		if d <= 0 {
			ps.Add(conf.Join("retry", "["+itoa(i)+"]"), "must be positive")
		}
	}
	if c.MaxInFlight < 1 {
		ps.Add("max_in_flight", "must be at least 1")
	}
	if c.MaxRetryAfter < 0 {
		ps.Add("max_retry_after", "must not be negative")
	}
	if c.BreakerThreshold < -1 {
		ps.Add("breaker_threshold", "must be positive, or -1 to disable the breaker")
	}
	if c.BreakerInterval < 0 {
		ps.Add("breaker_interval", "must not be negative")
	}
	if c.BreakerMaxInterval < c.BreakerInterval {
		ps.Add("breaker_max_interval", "must not be below breaker_interval (%s)", c.BreakerInterval)
	}
	if c.Filter != "" {
		if _, err := CompileFilter(c.Filter); err != nil {
			ps.Add("filter", "%v", err)
		}
	}
	if c.MaxPerSecond < 0 {
		ps.Add("max_per_second", "must not be negative")
	}
	return ps
}

// DecodeSecret returns the HMAC key of a Standard Webhooks secret
// ("whsec_" followed by base64).
func DecodeSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errSecretFormat
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errSecretFormat
	}
	return key, nil
}

// ValidName reports whether a job or subscription name is usable in topics,
// URLs and metric labels.
func ValidName(s string) bool {
	if s == "" || len(s) > 100 || strings.Trim(s, ".") == "" { // not "." or "..": names become folder names
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
