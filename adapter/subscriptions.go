package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/publish"
)

// subscriptionStore is what the follower reads.
type subscriptionStore interface {
	StoredSubscriptions(ctx context.Context) ([]store.StoredSubscription, int64, error)
	SubscriptionsVersion(ctx context.Context) (int64, error)
}

// subscriptionFollower keeps the registry equal to the configured
// subscriptions plus those stored through the API, following changes made
// by any process on the store: this one's at once (reload), others' within
// a poll interval. An unchanged subscription keeps its pointer, so only
// changed ones restart their dispatchers.
type subscriptionFollower struct {
	st         subscriptionStore
	reg        *publish.Registry
	configured []*publish.Subscription
	log        zerolog.Logger

	mu      sync.Mutex
	version int64
	loaded  bool
	built   map[string]builtSubscription
}

type builtSubscription struct {
	spec string
	sub  *publish.Subscription
}

func newSubscriptionFollower(st subscriptionStore, reg *publish.Registry, configured []*publish.Subscription, log zerolog.Logger) *subscriptionFollower {
	return &subscriptionFollower{st: st, reg: reg, configured: configured, log: log.With().Str("component", "subscriptions").Logger(),
		built: map[string]builtSubscription{}}
}

// reload reads the stored subscriptions and sets the registry.
func (f *subscriptionFollower) reload(ctx context.Context) error {
	stored, version, err := f.st.StoredSubscriptions(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	subs := append([]*publish.Subscription(nil), f.configured...)
	built := make(map[string]builtSubscription, len(stored))
	taken := map[string]bool{}
	for _, s := range f.configured {
		taken[s.Name] = true
	}
	for _, st := range stored {
		if taken[st.Name] {
			f.log.Warn().Str("subscription", st.Name).Msg("a stored subscription has the name of a configured one: the configured one wins")
			continue
		}
		if prev, ok := f.built[st.Name]; ok && prev.spec == string(st.Spec) {
			built[st.Name] = prev
			subs = append(subs, prev.sub)
			continue
		}
		var spec publish.SubscriptionSpec
		err := json.Unmarshal(st.Spec, &spec)
		var sub *publish.Subscription
		if err == nil {
			var cfg publish.SubscriptionConfig
			if cfg, err = spec.Config(st.Name); err == nil {
				sub, err = publish.NewSubscription(cfg)
			}
		}
		if err != nil {
			f.log.Error().Err(err).Str("subscription", st.Name).Msg("a stored subscription cannot be used; its deliveries wait until it is fixed")
			continue
		}
		built[st.Name] = builtSubscription{spec: string(st.Spec), sub: sub}
		subs = append(subs, sub)
		if f.loaded {
			f.log.Info().Str("subscription", st.Name).Msg("subscription created or changed")
		}
	}
	for name := range f.built {
		if _, ok := built[name]; !ok && f.loaded {
			f.log.Info().Str("subscription", name).Msg("subscription deleted")
		}
	}
	f.built, f.version, f.loaded = built, version, true
	f.reg.Set(subs)
	return nil
}

// configuredName reports whether name is a subscription of the config
// file (read-only through the API).
func (f *subscriptionFollower) configuredName(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.configured {
		if s.Name == name {
			return true
		}
	}
	return false
}

// setConfigured replaces the config file's subscriptions (a reload) and
// applies them; one whose settings did not change keeps its pointer, so
// its dispatcher keeps running.
func (f *subscriptionFollower) setConfigured(ctx context.Context, cfgs []publish.SubscriptionConfig) error {
	f.mu.Lock()
	old := map[string]*publish.Subscription{}
	for _, s := range f.configured {
		old[s.Name] = s
	}
	f.mu.Unlock()
	var subs []*publish.Subscription
	for _, c := range cfgs {
		c = c.WithDefaults()
		if prev, ok := old[c.Name]; ok && reflect.DeepEqual(prev.SubscriptionConfig, c) {
			subs = append(subs, prev)
			continue
		}
		s, err := publish.NewSubscription(c)
		if err != nil {
			return err
		}
		subs = append(subs, s)
	}
	f.mu.Lock()
	f.configured = subs
	f.mu.Unlock()
	return f.reload(ctx)
}

// run reloads whenever the stored version changes, until ctx ends.
func (f *subscriptionFollower) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := f.st.SubscriptionsVersion(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error().Err(err).Msg("reading the subscriptions' version failed")
			}
			continue
		}
		f.mu.Lock()
		changed := v != f.version
		f.mu.Unlock()
		if changed {
			if err := f.reload(ctx); err != nil && ctx.Err() == nil {
				f.log.Error().Err(err).Msg("reloading subscriptions failed")
			}
		}
	}
}

// followSubscriptions builds the registry of cfg's subscriptions plus those
// stored through the API, and the follower that keeps it so.
func followSubscriptions(ctx context.Context, cfg *Config, st subscriptionStore, log zerolog.Logger) (*publish.Registry, *subscriptionFollower, error) {
	var subs []*publish.Subscription
	for _, sc := range cfg.Subscriptions {
		s, err := publish.NewSubscription(sc)
		if err != nil {
			return nil, nil, err
		}
		subs = append(subs, s)
	}
	reg := publish.NewRegistry(subs)
	follower := newSubscriptionFollower(st, reg, subs, log)
	if err := follower.reload(ctx); err != nil {
		return nil, nil, fmt.Errorf("reading subscriptions: %w", err)
	}
	return reg, follower, nil
}
