package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adminapi"
)

func newSubscriptionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subscriptions",
		Short: "List subscriptions; pause and resume one",
		Example: `  exportbridge subscriptions list
  exportbridge subscriptions pause flow
  exportbridge subscriptions resume flow`,
		Args: cobra.NoArgs,
		RunE: needsSubcommand,
	}
	cmd.AddCommand(newSubscriptionsListCmd(), newPauseCmd("pause", "Pause a subscription: its deliveries wait until it is resumed"),
		newPauseCmd("resume", "Resume a paused subscription (after a 410 Gone, say); its deliveries go out at once"))
	return cmd
}

func newSubscriptionsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List subscriptions with their state",
		Long: `List subscriptions (from config.toml and created through the API) with
their topics, whether they are paused and their circuit.

The JSON form (-o json) is GET /api/subscriptions: [{name, origin, url,
topics, entities, headers, timeout, retry, max_in_flight, filter,
max_per_second, signed, paused, paused_reason, circuit: {state,
consecutive_failures, since, next_probe_at}, created_by, created_at,
updated_at}]. Read from the store (no daemon), circuit.state is empty:
circuits live in the daemon's memory.`,
		Example: `  exportbridge subscriptions list
  exportbridge subscriptions list -o json`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		_, err := show(cmd, f, "/api/subscriptions", nil, func(w io.Writer, subs []adminapi.SubscriptionView, _ string) {
			row(w, "NAME", "ORIGIN", "URL", "TOPICS", "STATE", "CIRCUIT", "REASON")
			for _, s := range subs {
				state, reason := "active", "-"
				if s.Paused {
					state, reason = "paused", dash(s.PausedReason)
				}
				row(w, s.Name, s.Origin, s.URL, strings.Join(s.Topics, ","), state, dash(s.Circuit.State), reason)
			}
		})
		return err
	}
	return cmd
}

func newPauseCmd(verb, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: "  exportbridge subscriptions " + verb + " flow",
		Args:    cobra.ExactArgs(1),
	}
	f := addAPIFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.connect(cmd)
		if err != nil {
			return err
		}
		defer c.close()
		if err := c.post(cmd.Context(), "/api/subscriptions/"+url.PathEscape(args[0])+"/"+verb, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %sd\n", args[0], verb)
		return nil
	}
	return cmd
}
