package pipeline

import (
	"context"
	"time"

	"github.com/exportbridge/exportbridge/internal/store"
)

// Progress is told how a run advances (export-now's live lines). Methods
// may be called from several goroutines.
type Progress interface {
	// Phase: the run is doing something else now.
	Phase(job string, p Phase)
	Downloading(job string, received, total int64)
	Converting(job, entity string, records int64)
	Committed(job string, events []store.Event)
}

// Phase is what a run is doing, as a source or the runner reports it.
type Phase struct {
	Name   string    // one of the Phase* names
	Status string    // FinOps's status, while waiting for it
	Since  time.Time // when it began (a resumed export's: when it started)
}

// Phases a run goes through besides downloading, converting and
// committing.
const (
	PhaseAsking   = "asking FinOps for a package"
	PhaseStarting = "starting the export"
	PhaseWaiting  = "waiting for FinOps"
)

type noProgress struct{}

func (noProgress) Phase(string, Phase)              {}
func (noProgress) Downloading(string, int64, int64) {}
func (noProgress) Converting(string, string, int64) {}
func (noProgress) Committed(string, []store.Event)  {}

type phaseKey struct{}

// withPhases makes ReportPhase calls under ctx reach report: the runner
// passes a run's context to its source, which knows when it starts or
// waits for an export.
func withPhases(ctx context.Context, report func(Phase)) context.Context {
	return context.WithValue(ctx, phaseKey{}, report)
}

// ReportPhase tells the run's Progress what its source is doing now.
func ReportPhase(ctx context.Context, p Phase) {
	if report, ok := ctx.Value(phaseKey{}).(func(Phase)); ok {
		report(p)
	}
}
