package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresDialect: many writers, so rows are locked where SQLite's one
// writer sufficed, claims skip rows other claims hold, and ControlNumbers
// are assigned under a transaction-level advisory lock: a sequence alone
// hands out numbers before commit, and a reader of "after N" would skip a
// smaller number that commits after a larger one.
var postgresDialect = dialect{
	name:           "postgres",
	idList:         `SELECT (jsonb_array_elements_text(?::jsonb))::bigint`,
	idListOrdered:  `SELECT value, ordinality AS key FROM jsonb_array_elements_text(?::jsonb) WITH ORDINALITY`,
	skipLocked:     ` FOR UPDATE SKIP LOCKED`,
	forUpdate:      ` FOR UPDATE`,
	forShare:       ` FOR SHARE`,
	lockEvents:     `SELECT pg_advisory_xact_lock(7304201)`,
	lockMigrations: `SELECT pg_advisory_xact_lock(7304202)`,
	notify:         `SELECT pg_notify('` + notifyChannel + `', '')`,
	resetIdentity:  `SELECT setval(pg_get_serial_sequence('{table}', '{column}'), GREATEST(COALESCE((SELECT MAX({column}) FROM {table}), 0), 1))`,
}

// notifyChannel is where a commit that makes deliveries due is announced.
const notifyChannel = "exportbridge_due"

// Postgres is the Store for several replicas: PostgreSQL through pgx's
// connection pool.
type Postgres struct {
	sqlStore
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to cfg.DSN, sizes the pool and applies pending
// migrations (once, however many replicas start together).
func OpenPostgres(ctx context.Context, cfg Config) (*Postgres, error) {
	cfg = cfg.WithDefaults()
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn: %w", errors.New(redactDSNError(err)))
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pc.ConnConfig.RuntimeParams["application_name"] = cfg.ApplicationName
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", pc.ConnConfig.Host, err)
	}
	db := sql.OpenDB(rebindConnector{stdlib.GetPoolConnector(pool)})
	db.SetMaxOpenConns(cfg.MaxConns)
	s := &Postgres{sqlStore: sqlStore{db: db, d: postgresDialect, stmts: map[string]*sql.Stmt{}}, pool: pool}
	if err := s.migrateTo(ctx, 0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// redactDSNError keeps a DSN's password out of a parse error.
func redactDSNError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			return msg[:i+3] + "REDACTED" + msg[i+j:]
		}
	}
	return msg
}

// Ping implements Store: a write goes through; ErrReadOnly on a server
// that accepts no writes (a standby, or default_transaction_read_only).
func (s *Postgres) Ping(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('ping', '') ON CONFLICT DO NOTHING`)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "25006" { // read_only_sql_transaction
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

// Listen calls wake whenever any process commits events, replays,
// resumes, rescues or releases deliveries, until ctx ends. A dropped
// connection is replaced (after a second); meanwhile, and always, the
// engine's polling is the backstop, so a replica that cannot listen still
// delivers, only later.
func (s *Postgres) Listen(ctx context.Context, wake func(), log func(error)) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		log(err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Postgres) listenOnce(ctx context.Context, wake func()) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// Not returned to the pool: a listening connection is this loop's alone.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	wake() // anything committed while no one listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}

// Close implements Store; it is idempotent.
func (s *Postgres) Close() error {
	err := s.sqlStore.Close()
	s.pool.Close()
	return err
}

// rebindConnector lets the shared SQL keep "?" placeholders: it rewrites
// them to PostgreSQL's $1, $2… on the way to pgx.
type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{Conn: conn}, nil
}

// rebindConn forwards exactly the optional interfaces pgx's stdlib.Conn
// implements (database/sql asks for them by type assertion).
type rebindConn struct{ driver.Conn }

func (c *rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c *rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, rebind(q))
}

func (c *rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, rebind(q), args)
}

func (c *rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, rebind(q), args)
}

func (c *rebindConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *rebindConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *rebindConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *rebindConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

var rebound sync.Map // query → rewritten query

// rebind turns "?" outside string literals into $1, $2…
func rebind(q string) string {
	if v, ok := rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	rebound.Store(q, out)
	return out
}
