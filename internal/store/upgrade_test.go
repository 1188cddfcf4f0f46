package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUpgradeDerivesEventAttributes: events committed under schema 2
// (before events stored their CloudEvents attributes) get them from the
// upgrade, as the sender used to derive them.
func TestUpgradeDerivesEventAttributes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	old, err := openSQLite(ctx, path, 2)
	require.NoError(t, err)
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	for _, ev := range []struct{ id, typ, entity string }{{"e1", "DataExportCompleted", "Customer groups"}, {"e2", "DataExportFailed", ""}} {
		_, err := old.db.ExecContext(ctx, `INSERT INTO events (event_id, type, topic, job, entity, body, created_at) VALUES (?, ?, 't', 'vendors', ?, '{}', ?)`,
			ev.id, ev.typ, ev.entity, ms(at))
		require.NoError(t, err)
		_, err = old.db.ExecContext(ctx, `INSERT INTO deliveries (event_id, subscription, state, next_attempt_at, created_at, updated_at) VALUES (?, 's1', 'pending', ?, ?, ?)`,
			ev.id, ms(at), ms(at), ms(at))
		require.NoError(t, err)
	}
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	ds, err := s.Deliveries(ctx, Filter{})
	require.NoError(t, err)
	require.Len(t, ds, 2)
	got := map[string]Event{}
	for _, d := range ds {
		got[d.Event.ID] = d.Event
	}
	require.Equal(t, "com.exportbridge.dataexport.completed", got["e1"].CEType)
	require.Equal(t, "/exportbridge/jobs/vendors", got["e1"].Source)
	require.Equal(t, "Customer groups", got["e1"].Subject)
	require.Equal(t, "com.exportbridge.dataexport.failed", got["e2"].CEType)
	require.Equal(t, "vendors", got["e2"].Subject, "a package-level failure's subject is the job")
}

// TestUpgradeTurnsArtifactPathsIntoKeys: artifacts stored with absolute
// paths (schema 3) are named by storage key after the upgrade.
func TestUpgradeTurnsArtifactPathsIntoKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eb.db")
	old, err := openSQLite(ctx, path, 3)
	require.NoError(t, err)
	_, err = old.db.ExecContext(ctx, `INSERT INTO artifacts (id, job, entity, name, path, content_type, bytes, sha256, records, created_at)
		VALUES ('a1', 'j', 'E', 'E.json', '/var/lib/exportbridge/data/files/pkg-1/E.json', 'application/json', 2, 'x', 1, 1)`)
	require.NoError(t, err)
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	a, err := s.Artifact(ctx, "a1")
	require.NoError(t, err)
	require.Equal(t, "pkg-1/E.json", a.Key)
}
