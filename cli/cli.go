// Package cli is exportbridge's command line: the daemon and its one-shot
// runs, and the operator's commands (status, jobs, deliveries,
// subscriptions), which ask the running daemon's API when it answers and
// read the store otherwise.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // a job or a delivery failed; an unknown id, name or state
	ExitUsage  = 2 // bad usage or configuration
)

// exitError carries a command's exit code; any other error from cobra
// (an unknown flag, a wrong number of arguments) is a usage error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failed: the command ran and did not succeed (exit 1).
func failed(err error) error { return &exitError{code: ExitFailed, err: err} }

// usage: the command was called wrongly (exit 2).
func usage(err error) error { return &exitError{code: ExitUsage, err: err} }

// errPrinted: the command wrote its own message already.
var errPrinted = errors.New("printed")

// Execute runs the command line args and returns the exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errPrinted) {
		fmt.Fprintln(stderr, "exportbridge:", redact.String(err.Error()))
		if code == ExitUsage && ee == nil {
			fmt.Fprintln(stderr, "Run 'exportbridge --help' for usage.")
		}
	}
	return code
}

// needsSubcommand is the RunE of commands that only group others: called
// alone it shows their usage, as a usage error; with an unknown
// subcommand, cobra's NoArgs names it.
func needsSubcommand(cmd *cobra.Command, _ []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Usage()
	return usage(errPrinted)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "exportbridge",
		Short: "Turn FinOps polling data-export integrations into push events",
		Long: `exportbridge polls Dynamics 365 Finance & Operations data exports (recurring
integration queues and package exports), converts each entity file to JSON,
serves it behind signed links and delivers an event per entity to the
subscribed webhooks and streams.

The operator's commands (status, jobs, deliveries, subscriptions) ask the
running daemon's API when it answers (--server, else the config's
server.listen), and read the store otherwise.`,
		Example: `  exportbridge run                       # the daemon (the demo with the repository's config.toml)
  exportbridge status                    # what runs, what failed, what waits
  exportbridge deliveries list --state dead
  exportbridge deliveries replay --id 42`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          needsSubcommand,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.AddGroup(&cobra.Group{ID: "daemon", Title: "Running:"}, &cobra.Group{ID: "ops", Title: "Operating a running product:"})
	for _, c := range []*cobra.Command{newRunCmd(), newExportNowCmd(), newCheckConfigCmd(), newSimCmd(), newConvertCmd(), newMigrateStoreCmd()} {
		c.GroupID = "daemon"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newStatusCmd(), newJobsCmd(), newDeliveriesCmd(), newReplayCmd(), newSubscriptionsCmd()} {
		c.GroupID = "ops"
		root.AddCommand(c)
	}
	root.AddCommand(newVersionCmd())
	root.Version = versionString()
	root.SetVersionTemplate("exportbridge {{.Version}}\n")
	return root
}
