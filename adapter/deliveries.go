package adapter

import (
	"context"
	"fmt"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// DeliveryQuery selects deliveries for the CLI.
type DeliveryQuery struct {
	ID           int64
	State        string
	Subscription string
	Limit        int
}

// Deliveries reads deliveries from the store (the CLI mirror of GET
// /api/deliveries; it works whether or not the daemon runs).
func Deliveries(ctx context.Context, cfg *Config, q DeliveryQuery) ([]store.Delivery, error) {
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Deliveries(ctx, store.Filter{ID: q.ID, State: q.State, Subscription: q.Subscription, Limit: q.Limit})
}

// ReplayDeliveries returns dead letters (or q.State deliveries) to pending
// in the store; a running daemon picks them up at its next poll.
func ReplayDeliveries(ctx context.Context, cfg *Config, q DeliveryQuery) (int, error) {
	if q.State != store.StateDead && q.State != store.StateDelivered {
		return 0, fmt.Errorf("%w: --state must be dead or delivered", ErrUsage)
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Replay(ctx, store.Filter{ID: q.ID, State: q.State, Subscription: q.Subscription}, time.Now())
}
