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

// TestPostgresListenWakesOtherReplicas: a commit in one replica wakes the
// listener of another; when the listening connection is killed, the
// listener comes back and wakes on the next commit.
func TestPostgresListenWakesOtherReplicas(t *testing.T) {
	t.Parallel()
	dsn := testservice.Postgres(t)
	open := func(app string) *store.Postgres {
		s, err := store.OpenPostgres(context.Background(), store.Config{Driver: "postgres", DSN: dsn, MaxConns: 3, ApplicationName: app})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("replica-a"), open("listen-test-"+t.Name())
	woken := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan struct{})
	go b.Listen(ctx, func() {
		select {
		case woken <- struct{}{}:
		default:
		}
		select {
		case <-listening:
		default:
			close(listening)
		}
	}, func(error) {})
	<-listening // the first wake-up says it listens
	drain := func() {
		for len(woken) > 0 {
			<-woken
		}
	}
	waitWake := func(msg string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatal(msg)
		}
	}
	drain()
	_, err := a.AppendEvents(context.Background(), []store.NewEvent{{Event: store.Event{ID: "n1", Type: "T", Topic: "x", Body: []byte(`{}`)}, Subscriptions: []string{"s"}}}, time.Now())
	require.NoError(t, err)
	waitWake("a commit in another replica wakes the listener")

	// Kill the listening connection: the listener reconnects by itself.
	require.NoError(t, a.ExecForTest(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'listen-test-`+t.Name()+`' AND query LIKE 'LISTEN%'`))
	waitWake("the listener is back (its first wake-up on reconnecting)")
	drain()
	_, err = a.Replay(context.Background(), store.Filter{State: store.StatePending}, time.Now())
	require.NoError(t, err)
	waitWake("a replay wakes it too")
}
