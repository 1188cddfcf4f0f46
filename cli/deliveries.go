package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/redact"
)

// deliveryFilter holds the flags that select deliveries.
type deliveryFilter struct {
	state, subscription, job, entity, since, until string
}

func (d *deliveryFilter) flags(cmd *cobra.Command, stateDefault, stateHelp string) {
	cmd.Flags().StringVar(&d.state, "state", stateDefault, stateHelp)
	cmd.Flags().StringVar(&d.subscription, "subscription", "", "only this subscription's")
	cmd.Flags().StringVar(&d.job, "job", "", "only events of this job")
	cmd.Flags().StringVar(&d.entity, "entity", "", "only events of this entity")
	cmd.Flags().StringVar(&d.since, "since", "", "created at or after: a time (2026-11-28T09:00:00Z) or an age (2h)")
	cmd.Flags().StringVar(&d.until, "until", "", "created before: a time or an age")
}

// query turns the flags into the API's parameters; a bad time is a usage
// error naming the flag.
func (d *deliveryFilter) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": d.state, "subscription": d.subscription, "job": d.job, "entity": d.entity} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]string{"since": d.since, "until": d.until} {
		if v == "" {
			continue
		}
		if age, err := time.ParseDuration(v); err == nil {
			q.Set(k, now.Add(-age).UTC().Format(time.RFC3339))
			continue
		}
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return nil, usage(fmt.Errorf("--%s %q: give a time like 2026-11-28T09:00:00Z or an age like 2h", k, v))
		}
		q.Set(k, v)
	}
	return q, nil
}

func newDeliveriesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "List deliveries, show one with its attempts, replay them",
		Long: `List deliveries (as 'deliveries list' does, given no subcommand), show one
with its attempts, replay them.`,
		Example: `  exportbridge deliveries --state dead
  exportbridge deliveries show 42
  exportbridge deliveries replay --subscription flow`,
		Args: cobra.NoArgs,
	}
	list := newDeliveriesListCmd()
	cmd.AddCommand(list, newDeliveriesShowCmd(), newDeliveriesReplayCmd("replay"))
	// "exportbridge deliveries --state dead" lists, as it always has.
	cmd.Flags().AddFlagSet(list.Flags())
	cmd.RunE = list.RunE
	return cmd
}

func newDeliveriesListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deliveries, newest first",
		Long: `List deliveries, newest first, selected by state, subscription, job,
entity and creation time. Page with --before: the last ID of the page
before.

The JSON form (-o json) is GET /api/deliveries: [{id, subscription, state,
attempt, next_attempt_at, last_status, last_error, event_id, event_type,
topic, job, entity, created_at, delivered_at}].`,
		Example: `  exportbridge deliveries list --state dead
  exportbridge deliveries list --job customer-groups --since 24h -o json
  exportbridge deliveries list --limit 50 --before 1234`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd, true)
	var sel deliveryFilter
	sel.flags(cmd, "", "pending | in_flight | delivered | dead | superseded (default every state)")
	limit := cmd.Flags().Int("limit", 50, "at most this many")
	before := cmd.Flags().Int64("before", 0, "only deliveries with a smaller ID (the paging cursor)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q, err := sel.query(time.Now())
		if err != nil {
			return err
		}
		q.Set("limit", strconv.Itoa(*limit))
		if *before != 0 {
			q.Set("before", strconv.FormatInt(*before, 10))
		}
		_, err = show(cmd, f, "/api/deliveries", q, func(w io.Writer, ds []adminapi.DeliveryView, _ string) {
			row(w, "ID", "SUBSCRIPTION", "STATE", "ATTEMPT", "STATUS", "JOB", "ENTITY", "EVENT ID", "CREATED", "LAST ERROR")
			for _, d := range ds {
				entity := d.Entity
				if entity == "" {
					entity = d.EventType
				}
				row(w, d.ID, d.Subscription, d.State, d.Attempt, d.LastStatus, d.Job, dash(entity), d.EventID, when(&d.CreatedAt),
					dash(redact.Excerpt(d.LastError, 60)))
			}
			if len(ds) == *limit {
				fmt.Fprintf(w, "(more: --before %d)\n", ds[len(ds)-1].ID)
			}
		})
		return err
	}
	return cmd
}

func newDeliveriesShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a delivery: its event and every attempt",
		Long: `Show a delivery: its state, its event's body and every attempt (time,
status, duration, response excerpt, process).

The JSON form (-o json) is GET /api/deliveries/ID: the list's fields plus
attempts [{attempt, at, duration_ms, status, error, response, process}] and
event {id, type, source, subject, topic, control_number, time, body}.`,
		Example: `  exportbridge deliveries show 42
  exportbridge deliveries show 42 -o json | jq .attempts`,
		Args: cobra.ExactArgs(1),
	}
	f := addAPIFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id < 1 {
			return failed(fmt.Errorf("no such delivery %q: ids are numbers", args[0]))
		}
		_, err = show(cmd, f, "/api/deliveries/"+args[0], nil, func(w io.Writer, d adminapi.DeliveryDetail, _ string) { printDelivery(w, d) })
		return err
	}
	return cmd
}

func printDelivery(w io.Writer, d adminapi.DeliveryDetail) {
	row(w, "ID", d.ID)
	row(w, "SUBSCRIPTION", d.Subscription)
	row(w, "STATE", d.State)
	if d.NextAttemptAt != nil {
		row(w, "NEXT ATTEMPT", when(d.NextAttemptAt))
	}
	row(w, "EVENT", d.EventID+" ("+d.EventType+", control number "+strconv.FormatInt(d.Event.ControlNumber, 10)+")")
	row(w, "TOPIC", d.Topic)
	row(w, "CREATED", when(&d.CreatedAt))
	row(w, "DELIVERED", when(d.DeliveredAt))
	fmt.Fprintln(w)
	row(w, "ATTEMPT", "AT", "STATUS", "DURATION", "PROCESS", "ERROR / RESPONSE")
	for _, a := range d.Attempts {
		detail := a.Error
		if a.Response != "" {
			detail = strings.TrimSpace(detail + " " + a.Response)
		}
		row(w, a.Attempt, when(&a.At), a.Status, (time.Duration(a.DurationMS) * time.Millisecond).String(), a.Process,
			dash(redact.Excerpt(strings.ReplaceAll(detail, "\n", " "), 80)))
	}
	if len(d.Attempts) == 0 {
		row(w, "-", "no attempt yet")
	}
	fmt.Fprintln(w)
	var body bytes.Buffer
	if json.Indent(&body, d.Event.Body, "", "  ") != nil {
		body.Write(d.Event.Body)
	}
	fmt.Fprintf(w, "BODY\n%s\n", body.String())
}

// newDeliveriesReplayCmd is "deliveries replay" and, as it has always
// been, "replay".
func newDeliveriesReplayCmd(use string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: "Send dead (or delivered) deliveries again, with the same event ids",
		Long: `Return deliveries to pending, with a fresh attempt count; the events keep
their ids. Say which: --id, or a selection (--subscription, --job,
--entity, --since, --until), or --all. Only dead (the default) or delivered
deliveries can be replayed.`,
		Example: `  exportbridge deliveries replay --id 42
  exportbridge deliveries replay --subscription flow
  exportbridge deliveries replay --job customer-groups --since 24h
  exportbridge deliveries replay --all`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd, false)
	var sel deliveryFilter
	sel.flags(cmd, "dead", "replay deliveries in this state: dead | delivered")
	id := cmd.Flags().Int64("id", 0, "replay this delivery")
	all := cmd.Flags().Bool("all", false, "replay every delivery in --state")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q, err := sel.query(time.Now())
		if err != nil {
			return err
		}
		selective := sel.subscription != "" || sel.job != "" || sel.entity != "" || sel.since != "" || sel.until != ""
		if *id == 0 && !selective && !*all {
			return usage(errors.New("replay: say which: --id N, a selection (--subscription, --job, --entity, --since, --until) or --all"))
		}
		c, err := f.connect(cmd)
		if err != nil {
			return err
		}
		defer c.close()
		var res map[string]int
		if *id != 0 {
			err = c.post(cmd.Context(), "/api/deliveries/"+strconv.FormatInt(*id, 10)+"/replay", nil, &res)
		} else {
			err = c.post(cmd.Context(), "/api/deliveries/replay", q, &res)
		}
		if err != nil {
			return err
		}
		next := "the daemon sends them now"
		if c.local {
			next = "a daemon sends them when it runs (or run export-now)"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d delivery(ies) queued again; %s\n", res["replayed"], next)
		return nil
	}
	return cmd
}

func newReplayCmd() *cobra.Command {
	cmd := newDeliveriesReplayCmd("replay")
	cmd.Short = "Same as 'deliveries replay'"
	return cmd
}
