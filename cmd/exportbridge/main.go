// Command exportbridge turns FinOps polling data-export integrations into
// push events. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/version"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a job or a delivery failed
	exitUsage  = 2 // bad usage or configuration
)

const usage = `exportbridge turns FinOps polling data-export integrations into push events.

Usage:
  exportbridge run          [--config FILE]                 run the daemon
  exportbridge export-now   [--config FILE] [--job NAME]... run jobs once and wait for delivery
  exportbridge check-config [--config FILE]                 validate the configuration
  exportbridge sim          [--listen ADDR] [--activity ID]... [--enqueue-every D]
                                                            run the FinOps simulator alone
  exportbridge migrate-store --from CONFIG|DSN|FILE --to CONFIG|DSN|FILE
                                                            copy a store (SQLite to PostgreSQL); idempotent
  exportbridge version

FILE defaults to $EXPORTBRIDGE_CONFIG, then ./config.toml.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stderr)
	case "export-now":
		return cmdExportNow(ctx, args, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(args, stdout, stderr)
	case "sim":
		return cmdSim(ctx, args, stderr)
	case "convert":
		return cmdConvert(ctx, args, stdout, stderr)
	case "deliveries":
		return cmdDeliveries(ctx, args, stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args, stdout, stderr)
	case "migrate-store":
		return cmdMigrateStore(ctx, args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "exportbridge", version.String())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "exportbridge: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

func defaultConfigPath() string {
	if p := os.Getenv("EXPORTBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "config.toml"
}

// loadConfig parses flags shared by config-reading commands and loads the
// config; on failure it prints every problem and returns exitUsage.
func loadConfig(fs *flag.FlagSet, args []string, stderr io.Writer) (*adapter.Config, string, int) {
	path := fs.String("config", defaultConfigPath(), "configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, "", exitUsage
	}
	cfg, err := adapter.LoadConfig(*path, adapter.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		var ce *adapter.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(ce.Problems), *path)
		}
		return nil, *path, exitUsage
	}
	return cfg, *path, exitOK
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, path, code := loadConfig(fs, args, stderr)
	if code != exitOK {
		return code
	}
	printConfigSummary(stdout, path, cfg)
	return exitOK
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, path, code := loadConfig(fs, args, stderr)
	if code != exitOK {
		return code
	}
	log := adapter.NewLogger(cfg.Log, stderr)
	// SIGHUP reads the configuration again: the log level and the
	// subscriptions change in place; any other change drains and exits 0.
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
		return exitFailed
	}
	return exitOK
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdExportNow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export-now", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var jobs stringList
	fs.Var(&jobs, "job", "job to run (repeatable; default all)")
	noWait := fs.Bool("no-wait", false, "return once events are committed, without waiting for delivery")
	cfg, _, code := loadConfig(fs, args, stderr)
	if code != exitOK {
		return code
	}
	terminal := adapter.IsTerminal(stderr)
	logCfg := cfg.Log
	if terminal && logCfg.Level == "info" {
		logCfg.Level = "warn" // the progress bar says what info lines would; warnings still show
	}
	log := adapter.NewLogger(logCfg, stderr)
	out := progressOut(terminal, stderr, stdout)
	report, err := adapter.ExportNow(ctx, cfg, log, adapter.ExportNowOptions{Jobs: jobs, NoWait: *noWait, Progress: newProgress(terminal, out, log),
		Failpoint: adapter.Failpoint(os.Getenv(adapter.FailpointEnv))})
	if report != nil {
		printExportReport(out, report)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, adapter.ErrUsage):
		fmt.Fprintln(stderr, err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "export-now:", err)
		return exitFailed
	}
}

func cmdSim(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8089", "address to listen on")
	var activities stringList
	fs.Var(&activities, "activity", "recurring job activity id to queue packages for (repeatable)")
	every := fs.Duration("enqueue-every", 0, "queue a generated package on each --activity at this interval (0: once at start)")
	rows := fs.Int("rows", 7, "records per entity in generated packages")
	visibility := fs.Duration("visibility-timeout", 30*time.Minute, "how long a dequeued, unacknowledged message stays hidden")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	log := adapter.NewLogger(adapter.LogConfig{Level: "info", Format: "auto"}, stderr)
	opt := adapter.SimOptions{Listen: *listen, Sim: finopssim.Config{Rows: *rows, VisibilityTimeout: *visibility, EnqueueEvery: *every}, DemoActivity: activities}
	if *every == 0 {
		opt.OnReady = func(_ string, sim *finopssim.Server) {
			for _, a := range activities {
				sim.EnqueueSample(a)
			}
		}
	}
	if err := adapter.RunSimulator(ctx, opt, log.With().Logger()); err != nil {
		log.Error().Err(err).Msg("simulator failed")
		return exitFailed
	}
	return exitOK
}

func cmdConvert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output directory (required)")
	format := fs.String("format", "json", "json | ndjson")
	compress := fs.String("compress", "none", "none | gzip | zstd")
	encoding := fs.String("encoding", "utf-8", "code page of delimited files without a BOM")
	// Accept the package before or after the flags.
	var pkg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pkg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if pkg == "" && fs.NArg() == 1 {
		pkg = fs.Arg(0)
	}
	if pkg == "" || *out == "" {
		fmt.Fprintln(stderr, "usage: exportbridge convert PACKAGE.zip --out DIR [--format json|ndjson] [--compress none|gzip|zstd]")
		return exitUsage
	}
	conv, code, err := adapter.ConvertPackage(ctx, pkg, *out, adapter.ConvertOptions{Format: *format, Compress: *compress, Encoding: *encoding})
	if conv != nil {
		printConversion(stdout, conv)
	}
	if err != nil {
		fmt.Fprintln(stderr, "convert:", err)
	}
	return code
}

// progressOut: bars go to the terminal (stderr), the summary to stdout.
func progressOut(terminal bool, stderr, stdout io.Writer) io.Writer {
	if terminal {
		return stderr
	}
	return stdout
}

func cmdDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deliveries", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "pending | in_flight | delivered | dead (default all)")
	sub := fs.String("subscription", "", "only this subscription")
	limit := fs.Int("limit", 50, "at most this many, newest first")
	cfg, _, code := loadConfig(fs, args, stderr)
	if code != exitOK {
		return code
	}
	ds, err := adapter.Deliveries(ctx, cfg, adapter.DeliveryQuery{State: *state, Subscription: *sub, Limit: *limit})
	if err == nil {
		err = printDeliveries(stdout, ds)
	}
	if err != nil {
		fmt.Fprintln(stderr, "deliveries:", err)
		return exitFailed
	}
	return exitOK
}

func cmdMigrateStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the store to copy: a config file, a postgres:// URL or a SQLite file")
	to := fs.String("to", "", "the store to copy into: a config file (its files move too), a postgres:// URL or a SQLite file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(stderr, "migrate-store: --from and --to are required")
		return exitUsage
	}
	err := adapter.MigrateStore(ctx, *from, *to, func(r store.CopyReport) {
		fmt.Fprintf(stdout, "%-20s %8d read %8d copied\n", r.Table, r.Rows, r.Copied)
	})
	if err != nil {
		fmt.Fprintln(stderr, "migrate-store:", redact.String(err.Error()))
		if errors.Is(err, adapter.ErrUsage) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintln(stdout, "done: running it again copies only what is new")
	return exitOK
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.Int64("id", 0, "replay this delivery")
	sub := fs.String("subscription", "", "replay this subscription's dead letters")
	all := fs.Bool("all", false, "replay every dead letter")
	state := fs.String("state", "dead", "replay deliveries in this state (dead or delivered)")
	cfg, _, code := loadConfig(fs, args, stderr)
	if code != exitOK {
		return code
	}
	if *id == 0 && *sub == "" && !*all {
		fmt.Fprintln(stderr, "replay: say which: --id N, --subscription NAME or --all")
		return exitUsage
	}
	n, err := adapter.ReplayDeliveries(ctx, cfg, adapter.DeliveryQuery{ID: *id, Subscription: *sub, State: *state})
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		if errors.Is(err, adapter.ErrUsage) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(stdout, "%d delivery(ies) queued again; a running daemon sends them within a second, or run export-now\n", n)
	return exitOK
}
