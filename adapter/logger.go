package adapter

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// Durations are logged with their unit ("retry_in":"845ms"), not as a bare
// number whose unit a reader has to guess. Set once, before any goroutine
// logs: zerolog reads it as a global.
func init() { zerolog.DurationFieldFormat = zerolog.DurationFormatString }

// NewLogger builds the process logger: console output on a terminal (or
// format "console"), JSON otherwise.
func NewLogger(cfg LogConfig, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		level = zerolog.InfoLevel
	}
	console := cfg.Format == "console"
	if cfg.Format == "auto" || cfg.Format == "" {
		console = IsTerminal(w)
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	// The process's level is zerolog's global one, so a reload (SIGHUP, the
	// API) changes it for every logger at once; events below it are not
	// built at all.
	zerolog.SetGlobalLevel(level)
	return zerolog.New(redact.Writer(w)).Level(zerolog.TraceLevel).With().Timestamp().Logger()
}

// SetLogLevel changes the process's log level ("debug", "info", "warn",
// "error").
func SetLogLevel(name string) error {
	level, err := zerolog.ParseLevel(name)
	if err != nil || name == "" {
		return fmt.Errorf("log level %q: use debug, info, warn or error", name)
	}
	zerolog.SetGlobalLevel(level)
	return nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
