package publish

import "sync"

// Registry holds the current subscriptions. They may change while the
// daemon runs (from the configuration today, from the store later): the
// engine starts and stops dispatchers to follow, and routing reads the
// current set for every event. Safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	subs     []*Subscription
	watchers []chan struct{}
}

// NewRegistry returns a registry holding subs.
func NewRegistry(subs []*Subscription) *Registry {
	return &Registry{subs: append([]*Subscription(nil), subs...)}
}

// Subscriptions returns the current subscriptions. The slice is the
// caller's; the subscriptions are shared and must not be changed.
func (r *Registry) Subscriptions() []*Subscription {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*Subscription(nil), r.subs...)
}

// Set replaces the subscriptions. A subscription whose pointer is kept is
// unchanged; a new pointer under a known name is a changed subscription.
func (r *Registry) Set(subs []*Subscription) {
	r.mu.Lock()
	r.subs = append([]*Subscription(nil), subs...)
	watchers := r.watchers
	r.mu.Unlock()
	for _, w := range watchers {
		select {
		case w <- struct{}{}:
		default: // a change is already waiting to be read
		}
	}
}

// changes returns a channel that receives after every Set.
func (r *Registry) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{}, 1)
	r.watchers = append(r.watchers, ch)
	return ch
}
