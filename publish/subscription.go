package publish

import (
	"fmt"
	"strings"
)

// Subscription is a configured target with its decoded signing keys.
type Subscription struct {
	SubscriptionConfig
	keys [][]byte
}

// NewSubscription validates cfg (defaults applied) and decodes its keys.
func NewSubscription(cfg SubscriptionConfig) (*Subscription, error) {
	cfg = cfg.WithDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("subscription %q: %w", cfg.Name, ps)
	}
	s := &Subscription{SubscriptionConfig: cfg}
	for _, sec := range cfg.Secret {
		k, err := DecodeSecret(sec)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// Matches reports whether the subscription wants an event: a topic pattern
// matches, and for completed exports the entity passes the entity filter.
func (s *Subscription) Matches(topic, typ, entity string) bool {
	matched := false
	for _, p := range s.Topics {
		if MatchTopic(p, topic) {
			matched = true
			break
		}
	}
	if !matched {
		return false
	}
	if typ == TypeFailed || len(s.Entities) == 0 {
		return true
	}
	for _, e := range s.Entities {
		if strings.EqualFold(e, entity) {
			return true
		}
	}
	return false
}

// Subscribers returns the names of the subscriptions that want an event.
func Subscribers(subs []*Subscription, topic, typ, entity string) []string {
	var out []string
	for _, s := range subs {
		if s.Matches(topic, typ, entity) {
			out = append(out, s.Name)
		}
	}
	return out
}
