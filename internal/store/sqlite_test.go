package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "eb.db"))
	require.NoError(t, err)
	return s
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
	_, err = s.ClaimDue(ctx, "s1", now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s, err = store.OpenSQLite(ctx, path) // migrations do not run twice
	require.NoError(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, v)
	ds, err := s.Deliveries(ctx, store.Filter{State: store.StateInFlight})
	require.NoError(t, err)
	require.Len(t, ds, 1, "in-flight state survived")
	n, err := s.Rescue(ctx, now.Add(2*time.Minute), now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
}
