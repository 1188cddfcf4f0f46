package adapter

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/dataexport"
	"github.com/exportbridge/exportbridge/internal/datapackage"
	"github.com/exportbridge/exportbridge/internal/finops"
	"github.com/exportbridge/exportbridge/internal/finopssim"
	"github.com/exportbridge/exportbridge/internal/store"
)

// sourceFunc is a Source made of a function.
type sourceFunc func(ctx context.Context) (Item, error)

func (f sourceFunc) Next(ctx context.Context) (Item, error) { return f(ctx) }

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
	e := newTestEnv(t, finopssim.Config{}, nil)
	a := startDaemon(t, e)
	dones := 0
	pkg := finopssim.SamplePackage("fake", 3, 1).Zip()
	items := []Item{
		fakeItem{id: "gone", done: &dones, fetch: func(string) (*finops.Download, error) {
			return nil, &UpstreamFailure{Reason: datapackage.ReasonDownloadFailed, Message: "the file expired upstream"}
		}},
		fakeItem{id: "pkg", done: &dones, fetch: func(dir string) (*finops.Download, error) {
			p := filepath.Join(dir, "fake.bin")
			require.NoError(t, os.WriteFile(p, pkg, 0o600))
			return &finops.Download{Path: p, Size: int64(len(pkg)), SHA256: "sha-of-pkg"}, nil
		}},
		fakeItem{id: "pkg", done: &dones}, // the same item again, in a later run: no fetch (it would panic)
	}
	next := 0
	a.Runner.jobs["customer-groups"].source = func(zerolog.Logger) Source {
		return sourceFunc(func(context.Context) (Item, error) {
			if next == 2 {
				return nil, nil
			}
			it := items[next]
			next++
			return it, nil
		})
	}
	res, err := a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Packages, "the failure and the package")
	require.Len(t, res.Failed, 1)
	require.Contains(t, res.Failed[0], "download_failed: the file expired upstream")
	require.Len(t, res.Events, 1+3)
	require.Equal(t, 2, dones, "both acknowledged after their commits")

	items, next = items[2:], 0
	a.Runner.jobs["customer-groups"].source = func(zerolog.Logger) Source {
		return sourceFunc(func(context.Context) (Item, error) {
			if next == len(items) {
				return nil, nil
			}
			next++
			return items[0], nil
		})
	}
	res, err = a.Runner.Run(context.Background(), "customer-groups", nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Duplicates, "recognised by its keys, before any fetch")
	require.Equal(t, 3, dones)
}
