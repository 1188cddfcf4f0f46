package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/fault"
	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
)

// openSQLite prepares a new database file; each call of the function it
// returns opens another handle (another process's view) on it.
func openSQLite(t *testing.T) func() store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eb.db")
	return func() store.Store {
		s, err := store.OpenSQLite(context.Background(), path)
		require.NoError(t, err)
		return s
	}
}

func TestSQLiteConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, openSQLite)
}

func TestSQLiteSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	s, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = s.CommitPackage(ctx, storetest.Package("j", "m1", []string{"A"}, "s1"))
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	_, err = s.ClaimDue(ctx, "instance-a", "s1", now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s, err = store.OpenSQLite(ctx, path) // migrations do not run twice
	require.NoError(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, store.LatestSchemaVersion(), v)
	ds, err := s.Deliveries(ctx, store.Filter{State: store.StateInFlight})
	require.NoError(t, err)
	require.Len(t, ds, 1, "in-flight state survived")
	n, err := s.Rescue(ctx, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// TestSQLiteNoticesItsFileIsGone: deleting or replacing the database file
// under an open store fails every later write with ErrLost (an environment
// fault), instead of committing into an unlinked file.
func TestSQLiteNoticesItsFileIsGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				require.NoError(t, ignoreMissing(os.Remove(p)))
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			require.NoError(t, os.Rename(path, path+".old"))
			require.NoError(t, os.WriteFile(path, nil, 0o644))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "eb.db")
			s, err := store.OpenSQLite(ctx, path)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			require.NoError(t, s.Ping(ctx))
			tc.breakIt(t, path)

			require.ErrorIs(t, s.Ping(ctx), store.ErrLost)
			_, err = s.CommitPackage(ctx, storetest.Package("j", "m1", []string{"A"}, "s1"))
			require.ErrorIs(t, err, store.ErrLost)
			require.ErrorIs(t, err, fault.ErrEnvironment)
			require.True(t, fault.IsEnvironment(err))
			require.Contains(t, err.Error(), path)
		})
	}
}

// TestSQLiteReadOnlyIsNotReady: a database file without write permission
// fails Ping with ErrReadOnly.
func TestSQLiteReadOnlyIsNotReady(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	s, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, os.Chmod(path, 0o444))
	require.ErrorIs(t, s.Ping(ctx), store.ErrReadOnly)
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, s.Ping(ctx))
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// TestSQLiteOpensConcurrently: processes starting together on one new
// database all come up, and each migration runs once.
func TestSQLiteOpensConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	const n = 6
	errs := make(chan error, n)
	stores := make(chan *store.SQLite, n)
	for range n {
		go func() {
			s, err := store.OpenSQLite(ctx, path)
			errs <- err
			stores <- s
		}()
	}
	for range n {
		require.NoError(t, <-errs)
		s := <-stores
		v, err := s.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, store.LatestSchemaVersion(), v)
		require.NoError(t, s.Close())
	}
}
