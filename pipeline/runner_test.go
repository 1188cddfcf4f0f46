package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/files"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/pipeline"
	"github.com/exportbridge/exportbridge/publish"
)

// sourceFunc is a Source made of a function.
type sourceFunc func(ctx context.Context) (pipeline.Item, error)

func (f sourceFunc) Next(ctx context.Context) (pipeline.Item, error) { return f(ctx) }

// observer is an Observer that counts nothing.
type observer struct{}

func (observer) Run(string, string)             {}
func (observer) Package(string, string)         {}
func (observer) Converted(string, int64, int64) {}
func (observer) Event(string, string)           {}

// newRunner returns a runner on a new store with one job whose source is
// made by newSource.
func newRunner(t *testing.T, newSource func() pipeline.Source) *pipeline.Runner {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "eb.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	cfg := pipeline.Config{Instance: "test", LeaseTTL: time.Minute, WorkDir: filepath.Join(dir, "work"), QuarantineDir: filepath.Join(dir, "quarantine")}
	job := pipeline.Job{Name: "customer-groups", NewSource: func(zerolog.Logger, func() *store.JobLease) pipeline.Source { return newSource() }}
	r, err := pipeline.NewRunner(cfg, []pipeline.Job{job}, st, files.Local{Dir: filepath.Join(dir, "files")}, publish.NewRegistry(nil),
		func() {}, observer{}, zerolog.Nop())
	require.NoError(t, err)
	return r
}

// fakeItem is an Item whose fetch is a function; done counts acks.
type fakeItem struct {
	id    string
	fetch func(dir string) (*finops.Download, error)
	done  *int
}

func (i fakeItem) Origin() dataexport.Source {
	return dataexport.Source{Job: "customer-groups", Kind: "fake", MessageID: i.id}
}
func (i fakeItem) Keys() store.MessageKeys { return store.MessageKeys{CorrelationID: i.id} }
func (i fakeItem) Redeliverable() bool     { return true }
func (i fakeItem) Fetch(_ context.Context, dir string, _ func(int64, int64)) (*finops.Download, error) {
	return i.fetch(dir)
}
func (i fakeItem) Done(context.Context) error { *i.done++; return nil }

// TestRunnerBringsInAnySource: the runner knows items, not kinds of job.
// An item its source failed becomes a DataExportFailed and is acknowledged;
// a fetched package is converted, committed and acknowledged; an item seen
// before is only acknowledged.
func TestRunnerBringsInAnySource(t *testing.T) {
	t.Parallel()
	dones := 0
	pkg := finopssim.SamplePackage("fake", 3, 1).Zip()
	items := []pipeline.Item{
		fakeItem{id: "gone", done: &dones, fetch: func(string) (*finops.Download, error) {
			return nil, &pipeline.UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: "the file expired upstream"}
		}},
		fakeItem{id: "pkg", done: &dones, fetch: func(dir string) (*finops.Download, error) {
			p := filepath.Join(dir, "fake.bin")
			require.NoError(t, os.WriteFile(p, pkg, 0o600))
			return &finops.Download{Path: p, Size: int64(len(pkg)), SHA256: "sha-of-pkg"}, nil
		}},
		fakeItem{id: "pkg", done: &dones}, // the same item again, in a later run: no fetch (it would panic)
	}
	next, round := 0, 0
	r := newRunner(t, func() pipeline.Source {
		return sourceFunc(func(context.Context) (pipeline.Item, error) {
			// First run: the failure and the package; second run: the
			// package again.
			if round == 0 && next == 2 || round == 1 && next == 3 {
				return nil, nil
			}
			it := items[next]
			next++
			return it, nil
		})
	})
	res, err := r.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Packages, "the failure and the package")
	require.Len(t, res.Failed, 1)
	require.Contains(t, res.Failed[0], "download_failed: the file expired upstream")
	require.Len(t, res.Events, 1+3)
	require.Equal(t, 2, dones, "both acknowledged after their commits")

	round = 1
	res, err = r.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Duplicates, "recognised by its keys, before any fetch")
	require.Equal(t, 3, dones)
}
