package publish

import (
	"fmt"
	"strings"

	"github.com/exportbridge/exportbridge/internal/store"
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
// matches, and an event that carries an entity's file passes the entity
// filter. Events without a file (failures, raised events) are not filtered
// by entity: a subscriber always hears that its entity failed.
func (s *Subscription) Matches(ev store.Event) bool {
	matched := false
	for _, p := range s.Topics {
		if MatchTopic(p, ev.Topic) {
			matched = true
			break
		}
	}
	if !matched {
		return false
	}
	if ev.ArtifactID == "" || len(s.Entities) == 0 {
		return true
	}
	for _, e := range s.Entities {
		if strings.EqualFold(e, ev.Entity) {
			return true
		}
	}
	return false
}

// Subscribers returns the names of the subscriptions that want an event.
func Subscribers(subs []*Subscription, ev store.Event) []string {
	var out []string
	for _, s := range subs {
		if s.Matches(ev) {
			out = append(out, s.Name)
		}
	}
	return out
}
