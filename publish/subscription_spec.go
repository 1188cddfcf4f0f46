package publish

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// SubscriptionSpec is a subscription as the API takes it and the store
// keeps it (JSON): the settings of a [[subscriptions]] entry, durations
// as Go duration strings ("10s").
type SubscriptionSpec struct {
	URL          string            `json:"url"`
	Topics       []string          `json:"topics,omitempty"`
	Entities     []string          `json:"entities,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Timeout      string            `json:"timeout,omitempty"`
	Retry        []string          `json:"retry,omitempty"`
	SuccessBody  string            `json:"success_body,omitempty"`
	MaxInFlight  int               `json:"max_in_flight,omitempty"`
	Secret       []string          `json:"secret,omitempty"`
	Filter       string            `json:"filter,omitempty"`
	MaxPerSecond float64           `json:"max_per_second,omitempty"`
	Supersede    bool              `json:"supersede,omitempty"`
}

// Config returns the subscription's configuration named name, checked:
// the error names the field.
func (s SubscriptionSpec) Config(name string) (SubscriptionConfig, error) {
	c := SubscriptionConfig{Name: name, URL: s.URL, Topics: s.Topics, Entities: s.Entities, Headers: s.Headers, SuccessBody: s.SuccessBody,
		MaxInFlight: s.MaxInFlight, Secret: s.Secret, Filter: s.Filter, MaxPerSecond: s.MaxPerSecond, Supersede: s.Supersede}
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil {
			return c, fmt.Errorf("timeout: %q is not a duration such as \"10s\"", s.Timeout)
		}
		c.Timeout = d
	}
	if s.Retry != nil {
		c.Retry = []time.Duration{}
		for i, r := range s.Retry {
			d, err := time.ParseDuration(r)
			if err != nil {
				return c, fmt.Errorf("retry[%d]: %q is not a duration such as \"30s\"", i, r)
			}
			c.Retry = append(c.Retry, d)
		}
	}
	c = c.WithDefaults()
	if ps := c.Validate(); len(ps) > 0 {
		return c, ps
	}
	return c, nil
}

// NewSecret returns a new Standard Webhooks secret: "whsec_" and 32 random
// bytes in base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
