package exporter_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/exporter"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
)

type waits struct {
	mu sync.Mutex
	n  int
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return ctx.Err()
}

func setup(t *testing.T, cfg finopssim.Config) (*finopssim.Server, *finops.Client, *exporter.Exporter, *waits) {
	t.Helper()
	sim, base := finopssim.StartTest(t, cfg)
	id, secret := sim.Credentials()
	c, err := finops.New(finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret}, zerolog.Nop())
	require.NoError(t, err)
	w := &waits{}
	return sim, c, exporter.New(c, exporter.WithWait(w.wait)), w
}

var spec = exporter.Spec{Job: "vendors", DefinitionGroup: "Vendors export", LegalEntity: "usmf"}

func TestExportPollDownload(t *testing.T) {
	t.Parallel()
	for _, nested := range []bool{false, true} {
		sim, _, ex, w := setup(t, finopssim.Config{ExportPolls: 3, EmptyURLPolls: 2, NestedValue: nested})
		ctx := context.Background()
		id := exporter.NewExecutionID(spec.Job, time.Now())
		got, err := ex.Start(ctx, spec, id)
		require.NoError(t, err)
		require.Equal(t, id, got)

		var seen []exporter.Status
		st, err := ex.WaitForCompletion(ctx, id, time.Second, time.Hour, func(s exporter.Status) { seen = append(seen, s) })
		require.NoError(t, err)
		require.Equal(t, exporter.StatusSucceeded, st)
		require.Equal(t, []exporter.Status{"NotRun", "Executing", "Executing", "Succeeded"}, seen)

		dl, err := ex.Download(ctx, id, t.TempDir(), time.Second, nil)
		require.NoError(t, err)
		pkg, ok := sim.ExportedPackage(id)
		require.True(t, ok)
		sum := sha256.Sum256(pkg.Zip())
		require.Equal(t, hex.EncodeToString(sum[:]), dl.SHA256)
		require.Equal(t, 3+2, w.n, "3 pending polls and 2 empty package URLs waited for")
		require.Equal(t, 3, sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExportedPackageUrl"))
	}
}

func TestStartingTwiceWithTheSameIDStartsOneExport(t *testing.T) {
	t.Parallel()
	sim, _, ex, _ := setup(t, finopssim.Config{})
	id := exporter.NewExecutionID(spec.Job, time.Now())
	for range 2 {
		_, err := ex.Start(context.Background(), spec, id)
		require.NoError(t, err)
	}
	require.Len(t, sim.Executions(), 1)
}

func TestFailedExportSurfacesExecutionErrors(t *testing.T) {
	t.Parallel()
	sim, _, ex, _ := setup(t, finopssim.Config{})
	sim.FailGroup(spec.DefinitionGroup, finopssim.ExecutionError{RecordID: "479625", Field: "VENDGROUP", ErrorMessage: "Vendor group 'X' does not exist."})
	ctx := context.Background()
	id := exporter.NewExecutionID(spec.Job, time.Now())
	_, err := ex.Start(ctx, spec, id)
	require.NoError(t, err)
	st, err := ex.WaitForCompletion(ctx, id, time.Second, time.Hour, nil)
	require.Equal(t, exporter.StatusFailed, st)
	require.ErrorIs(t, err, exporter.ErrExportFailed)
	var fe *exporter.FailedError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "record 479625: VENDGROUP: Vendor group 'X' does not exist.", fe.Errors)
}

func TestNotFoundRightAfterStartIsPendingUntilTimeout(t *testing.T) {
	t.Parallel()
	clock := finopssim.NewClock(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC))
	sim, base := finopssim.StartTest(t, finopssim.Config{})
	id, secret := sim.Credentials()
	c, err := finops.New(finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret}, zerolog.Nop())
	require.NoError(t, err)
	polls := 0
	ex := exporter.New(c, exporter.WithClock(clock.Now), exporter.WithWait(func(ctx context.Context, d time.Duration) error {
		polls++
		clock.Advance(d)
		return nil
	}))
	// Never started: the simulator answers 400 "were not found" forever.
	_, err = ex.WaitForCompletion(context.Background(), "vendors-never-started", 15*time.Second, time.Minute, nil)
	require.ErrorIs(t, err, exporter.ErrTimeout)
	require.Equal(t, 3, polls)
}

func TestBlobDownloadRefusesBearerAndRefreshesURLOn403(t *testing.T) {
	t.Parallel()
	sim, c, ex, _ := setup(t, finopssim.Config{EmptyURLPolls: -1})
	ctx := context.Background()
	id := exporter.NewExecutionID(spec.Job, time.Now())
	_, err := ex.Start(ctx, spec, id)
	require.NoError(t, err)
	_, err = ex.WaitForCompletion(ctx, id, time.Second, time.Hour, nil)
	require.NoError(t, err)
	u, err := ex.PackageURL(ctx, id, time.Second, 5)
	require.NoError(t, err)

	// The SAS URL with a bearer token is refused, as Azure Blob Storage does.
	_, err = c.Download(ctx, finops.Request{Op: "with bearer", Path: u}, t.TempDir())
	require.True(t, finops.IsStatus(err, http.StatusBadRequest), "got %v", err)
	require.Contains(t, err.Error(), "sig=REDACTED")

	// A 403 (expired SAS) makes the exporter ask for a fresh URL once.
	sim.InjectFault(finopssim.Fault{PathPrefix: "/blob/", Status: http.StatusForbidden, Times: 1})
	before := sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExportedPackageUrl")
	_, err = ex.Download(ctx, id, t.TempDir(), time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, before+2, sim.Requests("POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetExportedPackageUrl"))
}

func TestNewExecutionID(t *testing.T) {
	t.Parallel()
	id := exporter.NewExecutionID("vendors", time.Date(2026, 11, 23, 2, 0, 5, 0, time.FixedZone("x", 3600)))
	require.Regexp(t, regexp.MustCompile(`^vendors-20261123T010005Z-[0-9a-f]{8}$`), id)
	require.NotEqual(t, id, exporter.NewExecutionID("vendors", time.Now()))
}

func TestStatusNotFoundBeforeStart(t *testing.T) {
	t.Parallel()
	_, _, ex, _ := setup(t, finopssim.Config{})
	ctx := context.Background()
	id := exporter.NewExecutionID(spec.Job, time.Now())
	_, err := ex.Status(ctx, id)
	require.ErrorIs(t, err, exporter.ErrNotFound)
	_, err = ex.Start(ctx, spec, id)
	require.NoError(t, err)
	st, err := ex.Status(ctx, id)
	require.NoError(t, err)
	require.Equal(t, exporter.StatusNotRun, st)
}

// TestRejectedExportIsTyped: FinOps refusing ExportToPackage with a 4xx is
// ErrRejected (for good); a 429 or 5xx is not (it is retried by the client
// and then reported as it is).
func TestRejectedExportIsTyped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		rejected bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusNotFound, true},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			sim, base := finopssim.StartTest(t, finopssim.Config{})
			id, secret := sim.Credentials()
			w := &waits{} // the client's retries are recorded, not slept
			c, err := finops.New(finops.Config{BaseURL: base, TokenURL: finopssim.TokenURL(base), ClientID: id, ClientSecret: secret,
				MaxAttempts: 2, MaxThrottleWait: 3 * time.Second}, zerolog.Nop(), finops.WithWait(w.wait))
			require.NoError(t, err)
			e := exporter.New(c, exporter.WithWait(w.wait))
			sim.InjectFault(finopssim.Fault{PathPrefix: "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage",
				Status: tc.status, RetryAfter: "1"})
			_, err = e.Start(context.Background(), exporter.Spec{Job: "vendors", DefinitionGroup: "Vendors export"}, "x1")
			require.Error(t, err)
			require.Equal(t, tc.rejected, errors.Is(err, exporter.ErrRejected), "%v", err)
		})
	}
}
