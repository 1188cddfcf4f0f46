package cli

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show jobs (next and last run), readiness, delivery counts and subscriptions",
		Long: `Show what an operator looks at first: each job's schedule, next run and last
run; the readiness checks; deliveries by state; subscriptions that are
paused or whose circuit is open. It exits 1 when the product is not ready.

The JSON form (-o json) is GET /api/status: {ready, checks, jobs,
deliveries, subscriptions}.`,
		Example: `  exportbridge status
  exportbridge status -o json | jq .deliveries.dead
  exportbridge status --server https://exportbridge.internal:8080`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := show(cmd, f, "/api/status", nil, printStatus)
		if err != nil {
			return err
		}
		if !st.Ready {
			return failed(errPrinted)
		}
		return nil
	}
	return cmd
}

func printStatus(w io.Writer, st adminapi.StatusView, source string) {
	row(w, "JOB", "KIND", "SCHEDULE", "NEXT RUN", "LAST RUN", "OUTCOME", "EVENTS", "ERROR")
	for _, j := range st.Jobs {
		last, outcome, events, errText := "-", "-", "-", ""
		if j.Running {
			outcome = "running in " + j.RunningIn
		}
		if r := j.LastRun; r != nil {
			last, events, errText = when(&r.Finished), fmt.Sprint(r.Events), redact.Excerpt(r.Error, 60)
			if !j.Running {
				outcome = r.Outcome
			}
		}
		row(w, j.Name, j.Kind, dash(j.Schedule), when(j.NextRun), last, outcome, events, dash(errText))
	}
	fmt.Fprintln(w)
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	row(w, "READINESS", ready)
	keys := make([]string, 0, len(st.Checks))
	for k := range st.Checks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(w, "  "+k, st.Checks[k])
	}
	fmt.Fprintln(w)
	row(w, "DELIVERIES", "PENDING", "IN FLIGHT", "DELIVERED", "DEAD", "SUPERSEDED")
	d := st.Deliveries
	row(w, "", d[store.StatePending], d[store.StateInFlight], d[store.StateDelivered], d[store.StateDead], d[store.StateSuperseded])
	fmt.Fprintln(w)
	row(w, "SUBSCRIPTION", "STATE", "REASON")
	for _, s := range st.Subscriptions {
		row(w, s.Name, s.State, dash(s.Reason))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "("+source+")")
}
