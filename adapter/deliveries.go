package adapter

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
)

// DeliveryQuery selects deliveries for the CLI.
type DeliveryQuery struct {
	ID           int64
	State        string
	Subscription string
	Limit        int
}

// ListDeliveries prints deliveries from the store (the CLI mirror of GET
// /api/deliveries; it works whether or not the daemon runs).
func ListDeliveries(ctx context.Context, cfg *Config, q DeliveryQuery, w io.Writer) error {
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	ds, err := st.Deliveries(ctx, store.Filter{ID: q.ID, State: q.State, Subscription: q.Subscription, Limit: q.Limit})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBSCRIPTION\tSTATE\tATTEMPT\tSTATUS\tJOB\tENTITY\tEVENT ID\tUPDATED\tLAST ERROR")
	for _, d := range ds {
		errText := redact.String(d.LastError) // rows written before redaction at record time, too
		if len(errText) > 60 {
			errText = errText[:60] + "…"
		}
		entity := d.Event.Entity
		if entity == "" {
			entity = d.Event.Type
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Subscription, d.State, d.Attempt, d.LastStatus,
			d.Event.Job, entity, d.Event.ID, d.UpdatedAt.Local().Format(time.DateTime), errText)
	}
	return tw.Flush()
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
