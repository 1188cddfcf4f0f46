package adapter

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/exportbridge/exportbridge/internal/redact"
)

// PrintSummary writes a short human summary of a valid config.
func PrintSummary(w io.Writer, path string, cfg *Config) {
	fmt.Fprintf(w, "%s: OK\n", path)
	fmt.Fprintf(w, "  server: %s (public %s), api %s\n", cfg.Server.Listen, cfg.Server.PublicURL, onOff(cfg.Server.AdminToken != ""))
	fmt.Fprintf(w, "  store: %s %s; files: %s (links %s, kept %s)\n", cfg.Store.Driver, cfg.Store.DSN, cfg.Files.Dir, cfg.Files.URLTTL, cfg.Files.Retention)
	if cfg.Simulator.Enabled {
		fmt.Fprintf(w, "  simulator: on at %s\n", cfg.Simulator.Listen)
	}
	names := make([]string, 0, len(cfg.Connections))
	for n := range cfg.Connections {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  connection %s: %s\n", n, cfg.Connections[n].BaseURL)
	}
	fmt.Fprintf(w, "  %d job(s):\n", len(cfg.Jobs))
	for _, j := range cfg.Jobs {
		sched := j.Schedule
		if sched == "" {
			sched = "on demand"
		}
		what := j.ActivityID
		if j.Kind == KindPackageExport {
			what = fmt.Sprintf("%q", j.DefinitionGroup)
		}
		fmt.Fprintf(w, "    %-20s %-14s %s via %s, %s\n", j.Name, j.Kind, what, j.Connection, sched)
	}
	fmt.Fprintf(w, "  %d subscription(s):\n", len(cfg.Subscriptions))
	for _, s := range cfg.Subscriptions {
		signed := "unsigned"
		if len(s.Secret) > 0 {
			signed = fmt.Sprintf("signed (%d key(s))", len(s.Secret))
		}
		fmt.Fprintf(w, "    %-20s %s topics=%s, %s, %d attempts\n", s.Name, redact.URL(s.URL), strings.Join(s.Topics, ","), signed, len(s.Retry)+1)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
