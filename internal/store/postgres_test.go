package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/store/storetest"
	"github.com/exportbridge/exportbridge/internal/testservice"
)

// openPostgres prepares a new schema; each call of the function it returns
// opens another pool (another replica's view) on it.
func openPostgres(t *testing.T) func() store.Store {
	t.Helper()
	dsn := testservice.Postgres(t)
	return func() store.Store {
		s, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 4})
		require.NoError(t, err)
		return s
	}
}

func TestPostgresConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, openPostgres)
}

// TestPostgresReplicasStartingTogetherMigrateOnce: three replicas open one
// new database at the same moment; all come up, each migration ran once.
func TestPostgresReplicasStartingTogetherMigrateOnce(t *testing.T) {
	t.Parallel()
	dsn := testservice.Postgres(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	s, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 2})
	require.NoError(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(context.Background())
	require.NoError(t, err)
	require.Equal(t, store.LatestSchemaVersionOf("postgres"), v)
}

// TestPostgresOlderBinaryRefusesNewerSchema: a schema migrated by a newer
// exportbridge is not touched by an older one.
func TestPostgresOlderBinaryRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	dsn := testservice.Postgres(t)
	s, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 2})
	require.NoError(t, err)
	require.NoError(t, s.ExecForTest(context.Background(), `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`))
	s.Close()
	_, err = store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 2})
	require.ErrorContains(t, err, "newer than this binary knows")
}

func TestPostgresConfigIsValidated(t *testing.T) {
	t.Parallel()
	ps := store.Config{Driver: "postgres", DSN: "mysql://x", MaxConns: 1, StatementTimeout: time.Millisecond}.WithDefaults().Validate()
	keys := map[string]bool{}
	for _, p := range ps {
		keys[p.Key] = true
	}
	require.Equal(t, map[string]bool{"dsn": true, "max_conns": true, "statement_timeout": true}, keys)
	_, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: "postgres://u:SECRET-PW@127.0.0.1:1/x?connect_timeout=1"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "SECRET-PW", "the password stays out of errors")
}
