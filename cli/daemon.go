package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/version"
)

// configFlag adds --config to cmd; the path it returns follows the flag,
// then $EXPORTBRIDGE_CONFIG, then ./config.toml.
func configFlag(cmd *cobra.Command) func() string {
	p := cmd.Flags().String("config", "", "configuration file (default $EXPORTBRIDGE_CONFIG, then ./config.toml)")
	return func() string {
		if *p != "" {
			return *p
		}
		if env := os.Getenv("EXPORTBRIDGE_CONFIG"); env != "" {
			return env
		}
		return "config.toml"
	}
}

// loadConfig loads path, printing every problem; a bad config is a usage
// error.
func loadConfig(path string, stderr io.Writer) (*adapter.Config, error) {
	cfg, err := adapter.LoadConfig(path, adapter.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		var ce *adapter.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(ce.Problems), path)
		}
		return nil, usage(errPrinted)
	}
	return cfg, nil
}

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: scheduled jobs, deliveries, the API and the page",
		Long: `Run the daemon. SIGTERM or Ctrl-C drains and stops it. SIGHUP reads the
configuration again: the log level, the subscriptions and the jobs change
in place; any other change drains and exits 0, naming what changed, for the
service manager to start it again.`,
		Example: `  exportbridge run
  exportbridge run --config /etc/exportbridge/config.toml
  EXPORTBRIDGE_SERVER__LISTEN=127.0.0.1:9090 exportbridge run`,
		Args: cobra.NoArgs,
	}
	config := configFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		path := config()
		cfg, err := loadConfig(path, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		log := adapter.NewLogger(cfg.Log, cmd.ErrOrStderr())
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reloads := make(chan adapter.ReloadFunc)
		go func() {
			for {
				select {
				case <-hup:
				case <-ctx.Done():
					return
				}
				select {
				case reloads <- func() (*adapter.Config, error) { return adapter.LoadConfig(path, adapter.LoadOptions{}) }:
				case <-ctx.Done():
					return
				}
			}
		}()
		if err := adapter.Run(ctx, cfg, log, adapter.Failpoint(os.Getenv(adapter.FailpointEnv)), reloads); err != nil {
			log.Error().Err(err).Msg("exportbridge stopped with an error")
			return failed(errPrinted)
		}
		return nil
	}
	return cmd
}

func newExportNowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export-now",
		Short: "Run jobs once, now, and wait until their events are delivered",
		Long: `Run jobs once in this process and wait until every event they produced is
delivered or dead-lettered, following the retry delays. On a terminal, one
live line per job shows its phase; otherwise plain log lines. It exits 1
when anything failed, naming the command that replays it.`,
		Example: `  exportbridge export-now
  exportbridge export-now --job customer-groups --job vendors
  exportbridge export-now --no-wait`,
		Args: cobra.NoArgs,
	}
	config := configFlag(cmd)
	jobs := cmd.Flags().StringArray("job", nil, "job to run (repeatable; default every job)")
	noWait := cmd.Flags().Bool("no-wait", false, "return once events are committed, without waiting for delivery")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(config(), cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		return exportNow(cmd, cfg, *jobs, *noWait)
	}
	return cmd
}

// exportNow runs jobs in this process (export-now, and jobs run without a
// daemon).
func exportNow(cmd *cobra.Command, cfg *adapter.Config, jobs []string, noWait bool) error {
	stderr, stdout := cmd.ErrOrStderr(), cmd.OutOrStdout()
	terminal := adapter.IsTerminal(stderr)
	logCfg := cfg.Log
	out, logOut := stdout, stderr
	var prog *progress
	if terminal {
		if logCfg.Level == "info" {
			logCfg.Level = "warn" // the live lines say what info lines would; warnings still show
		}
		if logCfg.Format == "auto" || logCfg.Format == "" {
			logCfg.Format = "console"
		}
		out = stderr
		prog = newProgress(true, out, zerolog.Nop())
		logOut = prog.logWriter()
	}
	log := adapter.NewLogger(logCfg, logOut)
	if prog == nil {
		prog = newProgress(false, out, log)
	}
	report, err := adapter.ExportNow(cmd.Context(), cfg, log, adapter.ExportNowOptions{Jobs: jobs, NoWait: noWait, Progress: prog,
		Failpoint: adapter.Failpoint(os.Getenv(adapter.FailpointEnv))})
	if report != nil {
		printExportReport(out, report)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, adapter.ErrUsage):
		return usage(err)
	}
	fmt.Fprintln(stderr, "export-now:", redact.String(err.Error()))
	if report != nil {
		if hints := replayHints(report); len(hints) > 0 {
			fmt.Fprintf(stderr, "to replay what failed, once its cause is mended:\n  %s\n", strings.Join(hints, "\n  "))
		}
	}
	return failed(errPrinted)
}

func newCheckConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "check-config",
		Short:   "Validate the configuration and summarise it",
		Example: "  exportbridge check-config --config /etc/exportbridge/config.toml",
		Args:    cobra.NoArgs,
	}
	config := configFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		path := config()
		cfg, err := loadConfig(path, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		printConfigSummary(cmd.OutOrStdout(), path, cfg)
		return nil
	}
	return cmd
}

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the FinOps simulator alone",
		Example: `  exportbridge sim --listen 127.0.0.1:8089 --activity 5f0c5b0e-0000-4000-8000-000000000001
  exportbridge sim --activity ID --enqueue-every 30s --rows 1000`,
		Args: cobra.NoArgs,
	}
	listen := cmd.Flags().String("listen", "127.0.0.1:8089", "address to listen on")
	activities := cmd.Flags().StringArray("activity", nil, "recurring job activity id to queue packages for (repeatable)")
	every := cmd.Flags().Duration("enqueue-every", 0, "queue a generated package on each --activity at this interval (0: once at start)")
	rows := cmd.Flags().Int("rows", 7, "records per entity in generated packages")
	visibility := cmd.Flags().Duration("visibility-timeout", 30*time.Minute, "how long a dequeued, unacknowledged message stays hidden")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log := adapter.NewLogger(adapter.LogConfig{Level: "info", Format: "auto"}, cmd.ErrOrStderr())
		opt := adapter.SimOptions{Listen: *listen, Sim: finopssim.Config{Rows: *rows, VisibilityTimeout: *visibility, EnqueueEvery: *every}, DemoActivity: *activities}
		if *every == 0 {
			opt.OnReady = func(_ string, sim *finopssim.Server) {
				for _, a := range *activities {
					sim.EnqueueSample(a)
				}
			}
		}
		if err := adapter.RunSimulator(cmd.Context(), opt, log.With().Logger()); err != nil {
			log.Error().Err(err).Msg("simulator failed")
			return failed(errPrinted)
		}
		return nil
	}
	return cmd
}

func newConvertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "convert PACKAGE.zip --out DIR",
		Short:   "Convert a data package's entity files to JSON, offline",
		Example: "  exportbridge convert Customers.zip --out ./json --format ndjson --compress zstd",
		Args:    cobra.ExactArgs(1),
	}
	out := cmd.Flags().String("out", "", "output directory (required)")
	format := cmd.Flags().String("format", "json", "json | ndjson")
	compress := cmd.Flags().String("compress", "none", "none | gzip | zstd")
	encoding := cmd.Flags().String("encoding", "utf-8", "code page of delimited files without a BOM")
	_ = cmd.MarkFlagRequired("out")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		conv, code, err := adapter.ConvertPackage(cmd.Context(), args[0], *out, adapter.ConvertOptions{Format: *format, Compress: *compress, Encoding: *encoding})
		if conv != nil {
			printConversion(cmd.OutOrStdout(), conv)
		}
		switch {
		case err != nil:
			return &exitError{code: code, err: fmt.Errorf("convert: %w", err)}
		case code != ExitOK:
			return &exitError{code: code, err: errPrinted}
		}
		return nil
	}
	return cmd
}

func newMigrateStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate-store --from CONFIG|DSN|FILE --to CONFIG|DSN|FILE",
		Short: "Copy a store (SQLite to PostgreSQL, say); running it again copies only what is new",
		Example: `  exportbridge migrate-store --from config.toml --to postgres-config.toml
  exportbridge migrate-store --from ./exportbridge.db --to postgres://eb@db/exportbridge`,
		Args: cobra.NoArgs,
	}
	from := cmd.Flags().String("from", "", "the store to copy: a config file, a postgres:// URL or a SQLite file")
	to := cmd.Flags().String("to", "", "the store to copy into: a config file (its files move too), a postgres:// URL or a SQLite file")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *from == "" || *to == "" {
			return usage(errors.New("migrate-store: --from and --to are required"))
		}
		stdout := cmd.OutOrStdout()
		err := adapter.MigrateStore(cmd.Context(), *from, *to, func(r store.CopyReport) {
			fmt.Fprintf(stdout, "%-20s %8d read %8d copied\n", r.Table, r.Rows, r.Copied)
		})
		if err != nil {
			wrap := failed
			if errors.Is(err, adapter.ErrUsage) {
				wrap = usage
			}
			return wrap(fmt.Errorf("migrate-store: %s", redact.String(err.Error())))
		}
		fmt.Fprintln(stdout, "done: running it again copies only what is new")
		return nil
	}
	return cmd
}

func versionString() string { return version.String() }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "exportbridge", versionString())
		},
	}
}
