package adapter

import (
	"context"
	"errors"
	"io"

	"github.com/rs/zerolog"
)

// ErrUsage marks errors caused by how a command was called.
var ErrUsage = errors.New("usage")

// ExportNowOptions configures ExportNow.
type ExportNowOptions struct {
	Jobs     []string // names; empty means every job
	NoWait   bool
	Out      io.Writer
	Progress bool // show progress bars (a terminal)
}

// Run runs the daemon until ctx ends.
func Run(ctx context.Context, cfg *Config, log zerolog.Logger) error {
	if cfg.Simulator.Enabled {
		return RunSimulator(ctx, SimOptions{Listen: cfg.Simulator.Listen, DemoActivity: simActivities(cfg)}, log)
	}
	<-ctx.Done()
	return nil
}

// ExportNow runs jobs once. Filled in by the runner issue.
func ExportNow(ctx context.Context, cfg *Config, log zerolog.Logger, opt ExportNowOptions) error {
	return errors.New("export-now is not implemented yet")
}
