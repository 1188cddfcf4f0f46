package cli

import (
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adminapi"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/pipeline"
)

func newJobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List jobs and run one now",
		Example: `  exportbridge jobs list
  exportbridge jobs run customer-groups`,
		Args: cobra.NoArgs,
		RunE: needsSubcommand,
	}
	cmd.AddCommand(newJobsListCmd(), newJobsRunCmd())
	return cmd
}

func newJobsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs with their schedule, next run and last run",
		Long: `List jobs with their schedule, next run and last run (from the run
history in the store, whichever process ran them).

The JSON form (-o json) is GET /api/jobs: [{name, kind, schedule,
next_run, running, running_in, last_run: {id, process, started, finished,
outcome, packages, duplicates, events, error}, last_error}].`,
		Example: `  exportbridge jobs list
  exportbridge jobs list -o json`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		_, err := show(cmd, f, "/api/jobs", nil, func(w io.Writer, jobs []adminapi.JobView, _ string) {
			row(w, "NAME", "KIND", "SCHEDULE", "NEXT RUN", "RUNNING", "LAST RUN", "OUTCOME", "PACKAGES", "EVENTS", "ERROR")
			for _, j := range jobs {
				running := "-"
				if j.Running {
					running = j.RunningIn
				}
				last, outcome, pkgs, events, errText := "-", "-", "-", "-", "-"
				if r := j.LastRun; r != nil {
					last, outcome, pkgs, events, errText = when(&r.Finished), r.Outcome, fmt.Sprint(r.Packages), fmt.Sprint(r.Events), dash(redact.Excerpt(r.Error, 60))
				}
				row(w, j.Name, j.Kind, dash(j.Schedule), when(j.NextRun), running, last, outcome, pkgs, events, errText)
			}
		})
		return err
	}
	return cmd
}

func newJobsRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a job now (in the daemon; in this process when none answers)",
		Long: `Run a job now. A running daemon starts it in the background (or, with
--wait, answers when the run ends); without a daemon the job runs in this
process, as export-now --job NAME does.`,
		Example: `  exportbridge jobs run customer-groups
  exportbridge jobs run customer-groups --wait`,
		Args: cobra.ExactArgs(1),
	}
	f := addAPIFlags(cmd, false)
	wait := cmd.Flags().Bool("wait", false, "wait until the run ends (without a daemon: until its deliveries settle)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		c, err := f.connect(cmd)
		if err != nil {
			return err
		}
		defer c.close()
		if c.local {
			if !hasJob(c, name) {
				return failed(fmt.Errorf("no such job %q", name))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "no daemon answered: running %s in this process\n", name)
			return exportNow(cmd, c.cfg, []string{name}, !*wait)
		}
		q := url.Values{}
		if *wait {
			q.Set("wait", "true")
			var res pipeline.RunResult
			if err := c.post(cmd.Context(), "/api/jobs/"+url.PathEscape(name)+"/run", q, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d package(s), %d event(s), %d redelivered message(s) recognised\n", name, res.Packages, len(res.Events), res.Duplicates)
			return nil
		}
		if err := c.post(cmd.Context(), "/api/jobs/"+url.PathEscape(name)+"/run", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: started in the daemon; follow it with 'exportbridge jobs list'\n", name)
		return nil
	}
	return cmd
}

func hasJob(c *client, name string) bool {
	for _, j := range c.cfg.Jobs {
		if j.Name == name {
			return true
		}
	}
	return false
}
