package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/redact"
	"github.com/exportbridge/exportbridge/internal/store"
)

// printConfigSummary writes a short human summary of a valid config.
func printConfigSummary(w io.Writer, path string, cfg *adapter.Config) {
	fmt.Fprintf(w, "%s: OK\n", path)
	fmt.Fprintf(w, "  server: %s (public %s), api %s\n", cfg.Server.Listen, cfg.Server.PublicURL, onOff(cfg.Server.AdminToken != ""))
	fmt.Fprintf(w, "  store: %s %s; files: %s (links %s, kept %s)\n", cfg.Store.Driver, redact.URL(cfg.Store.DSN), cfg.Files.Dir, cfg.Files.URLTTL, cfg.Files.Retention)
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
		if j.Kind == adapter.KindPackageExport {
			what = fmt.Sprintf("%q", j.DefinitionGroup)
		}
		fmt.Fprintf(w, "    %-20s %-14s %s via %s, %s\n", j.Name, j.Kind, what, j.Connection, sched)
		if len(j.Changes) > 0 {
			var keyed []string
			for _, entity := range sortedKeys(j.Changes) {
				keyed = append(keyed, fmt.Sprintf("%s (%s)", entity, strings.Join(j.Changes[entity], ", ")))
			}
			fmt.Fprintf(w, "    %-20s changes of %s\n", "", strings.Join(keyed, "; "))
		}
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

// printDeliveries writes deliveries as a table.
func printDeliveries(w io.Writer, ds []store.Delivery) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBSCRIPTION\tSTATE\tATTEMPT\tSTATUS\tJOB\tENTITY\tEVENT ID\tUPDATED\tLAST ERROR")
	for _, d := range ds {
		errText := redact.Excerpt(redact.String(d.LastError), 60) // rows written before redaction at record time, too
		entity := d.Event.Entity
		if entity == "" {
			entity = d.Event.Type
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Subscription, d.State, d.Attempt, d.LastStatus,
			d.Event.Job, entity, d.Event.ID, d.UpdatedAt.Local().Format(time.DateTime), errText)
	}
	return tw.Flush()
}

// printConversion writes one line per converted or failed entity.
func printConversion(w io.Writer, conv *datapackage.Conversion) {
	for _, r := range conv.Results {
		fmt.Fprintf(w, "%-32s %-12s %10d records %12d bytes  sha256:%s  %s\n", r.Entity, r.SourceFormat, r.Records, r.Bytes, r.SHA256, r.Path)
	}
	for _, f := range conv.Failures {
		fmt.Fprintf(w, "%-32s FAILED (%s): %v\n", f.Entity, f.Reason, f)
	}
}

// printExportReport writes a line per job and, when it waited, the
// deliveries' counts; what failed is in ExportNow's error.
func printExportReport(w io.Writer, r *adapter.ExportNowReport) {
	for _, j := range r.Jobs {
		if res := j.Result; res != nil {
			fmt.Fprintf(w, "%s: %d package(s), %d event(s), %d redelivered message(s) recognised\n", j.Name, res.Packages, len(res.Events), res.Duplicates)
		}
	}
	if !r.Waited {
		return
	}
	counts := map[string]int{}
	for _, d := range r.Deliveries {
		counts[d.State]++
	}
	fmt.Fprintf(w, "deliveries: %d delivered, %d dead, %d not delivered\n", counts[store.StateDelivered], counts[store.StateDead],
		len(r.Deliveries)-counts[store.StateDelivered]-counts[store.StateDead])
}
