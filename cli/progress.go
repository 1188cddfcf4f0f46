package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/exportbridge/exportbridge/adapter"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
)

// progress shows export-now as it runs. On a terminal: one live line per
// job, rewritten in place, saying its phase: asking FinOps, starting the
// export, waiting for FinOps (status, elapsed), downloading (bytes),
// converting (records), delivering (settled of total, retries and when the
// next is due, open circuits). Without a terminal: a log line at each
// change of phase, and delivery counts at most every few seconds.
type progress struct {
	mu       sync.Mutex
	terminal bool
	out      io.Writer
	log      zerolog.Logger
	now      func() time.Time
	jobs     []string          // in the order they first reported
	lines    map[string]string // each job's line
	phases   map[string]string // each job's phase, for the log lines
	drawn    int               // lines on screen
	lastDraw time.Time
	lastLog  map[string]time.Time
	closed   bool
}

var _ adapter.ExportProgress = (*progress)(nil)

func newProgress(terminal bool, out io.Writer, log zerolog.Logger) *progress {
	return &progress{terminal: terminal, out: out, log: log.With().Str("component", "export_now").Logger(), now: time.Now,
		lines: map[string]string{}, phases: map[string]string{}, lastLog: map[string]time.Time{}}
}

// set changes job's line. phase is what the line is about: a new phase is
// drawn (or logged) at once; updates within a phase at most 10 times a
// second on a terminal, every 2 s in the log.
func (p *progress) set(job, phase, line string, fields map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if _, ok := p.lines[job]; !ok {
		p.jobs = append(p.jobs, job)
	}
	p.lines[job] = line
	changed := p.phases[job] != phase
	p.phases[job] = phase
	now := p.now()
	if !p.terminal {
		if changed || now.Sub(p.lastLog[job]) >= 2*time.Second {
			p.lastLog[job] = now
			p.log.Info().Str("job", job).Fields(fields).Msg(phase)
		}
		return
	}
	if changed || now.Sub(p.lastDraw) >= 100*time.Millisecond {
		p.draw(now)
	}
}

// logWriter is where log lines go while the live lines show: above them,
// which are drawn again below.
func (p *progress) logWriter() io.Writer { return logAbove{p} }

type logAbove struct{ p *progress }

func (l logAbove) Write(b []byte) (int, error) {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.drawn == 0 {
		return p.out.Write(b)
	}
	// Up to the first live line, clear to the end of the screen, the log
	// line, then the live lines again.
	if _, err := fmt.Fprintf(p.out, "\x1b[%dA\r\x1b[J", p.drawn); err != nil {
		return 0, err
	}
	n, err := p.out.Write(b)
	p.drawn = 0
	p.draw(p.now())
	return n, err
}

// draw rewrites the jobs' lines in place: up to the first, then each
// line cleared and written.
func (p *progress) draw(now time.Time) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	width := 0
	for _, j := range p.jobs {
		width = max(width, len(j))
	}
	for _, j := range p.jobs {
		fmt.Fprintf(&b, "\r\x1b[2K%-*s  %s\n", width, j, p.lines[j])
	}
	_, _ = io.WriteString(p.out, b.String())
	p.drawn, p.lastDraw = len(p.jobs), now
}

// Phase implements pipeline.Progress.
func (p *progress) Phase(job string, ph pipeline.Phase) {
	line, phase := ph.Name, ph.Name
	fields := map[string]any{}
	if ph.Name == adapter.PhaseHeldElsewhere {
		line = fmt.Sprintf("%s (%s)", ph.Name, ph.Status)
		fields["held_by"] = ph.Status
	}
	if ph.Name == pipeline.PhaseWaiting {
		elapsed := p.now().Sub(ph.Since).Round(time.Second)
		status := ph.Status
		if status == "" {
			status = "asked"
		}
		line = fmt.Sprintf("%s: %s (%s)", ph.Name, status, elapsed)
		fields["status"], fields["elapsed"] = status, elapsed
		if p.terminal {
			phase += ": " + status // each new status shows at once
		}
	}
	p.set(job, phase, line, fields)
}

// Downloading implements pipeline.Progress.
func (p *progress) Downloading(job string, received, total int64) {
	line := "downloading " + humanBytes(received)
	if total > 0 {
		line += " of " + humanBytes(total)
	}
	p.set(job, "downloading", line, map[string]any{"bytes": received, "total_bytes": total})
}

// Converting implements pipeline.Progress.
func (p *progress) Converting(job, entity string, records int64) {
	p.set(job, "converting "+entity, fmt.Sprintf("converting %s: %d records", entity, records), map[string]any{"entity": entity, "records": records})
}

// Committed implements pipeline.Progress.
func (p *progress) Committed(job string, events []store.Event) {
	p.set(job, "committed", fmt.Sprintf("committed %d event(s)", len(events)), map[string]any{"events": len(events)})
}

// Finished implements adapter.ExportProgress.
func (p *progress) Finished(job string, events int, err error) {
	switch {
	case err != nil:
		p.set(job, "failed", "failed: "+err.Error(), map[string]any{"error": err.Error()})
	case events == 0:
		p.set(job, "nothing new", "nothing new to export", nil)
	}
}

// Delivering implements adapter.ExportProgress.
func (p *progress) Delivering(job string, d adapter.DeliveryProgress) {
	line := fmt.Sprintf("delivering: %d of %d settled", d.Settled, d.Total)
	fields := map[string]any{"settled": d.Settled, "total": d.Total}
	phase := "delivering"
	if d.Retrying > 0 {
		line += fmt.Sprintf("; retrying %d, next at %s", d.Retrying, d.NextRetry.Local().Format(time.TimeOnly))
		fields["retrying"], fields["next_retry_at"] = d.Retrying, d.NextRetry
		phase = "delivering, retrying"
	}
	if len(d.OpenCircuits) > 0 {
		line += "; circuit open: " + strings.Join(d.OpenCircuits, ", ")
		fields["open_circuits"] = d.OpenCircuits
		phase = "delivering, circuit open"
	}
	if len(d.Paused) > 0 {
		line += "; paused: " + strings.Join(d.Paused, ", ")
		fields["paused"] = d.Paused
	}
	if d.Settled == d.Total {
		phase = "settled"
	}
	p.set(job, phase, line, fields)
}

// Close draws the last state and ends the live lines.
func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && !p.closed && len(p.jobs) > 0 {
		p.draw(p.now())
	}
	p.closed = true
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// replayHints names the commands that replay what failed: per job, its
// dead deliveries since the oldest of them; per paused subscription, its
// resume.
func replayHints(r *adapter.ExportNowReport) []string {
	since := map[string]time.Time{}
	var paused []string
	for _, d := range r.Deliveries {
		switch d.State {
		case store.StateDead:
			if t, ok := since[d.Event.Job]; !ok || d.CreatedAt.Before(t) {
				since[d.Event.Job] = d.CreatedAt
			}
		case store.StatePending:
			if !slices.Contains(paused, d.Subscription) {
				paused = append(paused, d.Subscription)
			}
		}
	}
	var out []string
	for _, job := range sortedKeys(since) {
		out = append(out, fmt.Sprintf("exportbridge deliveries replay --job %s --since %s", job, since[job].UTC().Truncate(time.Second).Format(time.RFC3339)))
	}
	slices.Sort(paused)
	for _, s := range paused {
		out = append(out, "exportbridge subscriptions resume "+s)
	}
	for _, j := range r.Jobs {
		if j.Err != nil {
			out = append(out, "exportbridge export-now --job "+j.Name)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
