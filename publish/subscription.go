package publish

import (
	"fmt"
	"strings"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Subscription is a configured target with its decoded signing keys.
type Subscription struct {
	SubscriptionConfig
	keys   [][]byte
	filter *Filter
}

// NewSubscription validates cfg (defaults applied) and decodes its keys.
func NewSubscription(cfg SubscriptionConfig) (*Subscription, error) {
	cfg = cfg.WithDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("subscription %q: %w", cfg.Name, ps)
	}
	s := &Subscription{SubscriptionConfig: cfg}
	if cfg.Filter != "" {
		f, err := CompileFilter(cfg.Filter)
		if err != nil {
			return nil, fmt.Errorf("subscription %q: %w", cfg.Name, err)
		}
		s.filter = f
	}
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
// matches, an event that carries an entity's file passes the entity
// filter, and the event satisfies the CEL filter if there is one. Events
// without a file (failures, raised events) are not filtered by entity: a
// subscriber always hears that its entity failed.
func (s *Subscription) Matches(ev store.Event) bool {
	var a activation
	return s.matches(ev, &a)
}

// matches is Matches with the event's filter activation made at most once
// for every subscription asked.
func (s *Subscription) matches(ev store.Event, a *activation) bool {
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
	if ev.ArtifactID != "" && len(s.Entities) > 0 {
		ok := false
		for _, e := range s.Entities {
			if strings.EqualFold(e, ev.Entity) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if s.filter == nil {
		return true
	}
	if *a == nil {
		*a = newActivation(ev)
	}
	ok, err := s.filter.Match(*a)
	return err == nil && ok
}

// Subscribers returns the names of the subscriptions that want an event.
func Subscribers(subs []*Subscription, ev store.Event) []string {
	var out []string
	var a activation
	for _, s := range subs {
		if s.matches(ev, &a) {
			out = append(out, s.Name)
		}
	}
	return out
}
