package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"

	"github.com/exportbridge/exportbridge/internal/store"
)

// progress shows export-now's progress: a progress bar on a terminal, plain
// log lines (at milestones, not per record) otherwise.
type progress struct {
	mu     sync.Mutex
	bar    *progressbar.ProgressBar // nil without a terminal
	out    io.Writer
	log    zerolog.Logger
	phase  string
	last   time.Time
	closed bool
}

func newProgress(terminal bool, out io.Writer, log zerolog.Logger) *progress {
	p := &progress{out: out, log: log.With().Str("component", "export_now").Logger()}
	if terminal {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(out), progressbar.OptionSpinnerType(14),
			progressbar.OptionSetWidth(30), progressbar.OptionShowBytes(false), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) describe(phase, text string, cur, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.bar == nil {
		return
	}
	if phase != p.phase {
		p.phase = phase
		p.bar.ChangeMax64(total)
	}
	p.bar.Describe(text)
	_ = p.bar.Set64(cur)
}

// Downloading implements adapter.ExportProgress.
func (p *progress) Downloading(job string, received, total int64) {
	p.describe("download "+job, fmt.Sprintf("%s: downloading %s", job, humanBytes(received)), received, total)
}

// Converting implements adapter.ExportProgress.
func (p *progress) Converting(job, entity string, records int64) {
	p.describe("convert "+job+entity, fmt.Sprintf("%s: converting %s: %d records", job, entity, records), records, -1)
}

// Committed implements adapter.ExportProgress.
func (p *progress) Committed(job string, events []store.Event) {
	if p.bar == nil {
		p.log.Info().Str("job", job).Int("events", len(events)).Msg("package converted and committed")
		return
	}
	p.describe("commit "+job, fmt.Sprintf("%s: committed %d event(s)", job, len(events)), 0, -1)
}

// Delivering shows done of total deliveries settled.
func (p *progress) Delivering(done, total int) {
	if p.bar == nil {
		p.mu.Lock()
		due := time.Since(p.last) > 2*time.Second || done == total
		if due {
			p.last = time.Now()
		}
		p.mu.Unlock()
		if due {
			p.log.Info().Int("settled", done).Int("total", total).Msg("deliveries")
		}
		return
	}
	p.describe("deliver", fmt.Sprintf("delivering: %d/%d settled", done, total), int64(done), int64(total))
}

// Close ends the bar.
func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.closed {
		_ = p.bar.Finish()
		fmt.Fprintln(p.out)
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
