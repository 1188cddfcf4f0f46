package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqliteDialect: one writer (serialised here), JSON arrays through
// json_each, no row locks (the writer lock covers them).
var sqliteDialect = dialect{
	name:          "sqlite",
	serialWrites:  true,
	idList:        `SELECT value FROM json_each(?)`,
	idListOrdered: `SELECT value, key FROM json_each(?)`,
}

// SQLite is the embedded Store.
type SQLite struct {
	sqlStore
	// path and ident identify the database file opened: deleting or
	// replacing it leaves this process writing into an unlinked file whose
	// contents nobody will ever read, so every write transaction checks it.
	path  string
	ident fileIdent
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path and applies
// pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) { return openSQLite(ctx, path, 0) }

// openSQLite opens path and migrates it to version (0: the latest).
func openSQLite(ctx context.Context, path string, version int) (*SQLite, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// WAL lets readers proceed during a write; NORMAL sync is durable
	// against process crashes (CommitPackage raises it to FULL for the
	// commit that precedes an ack, see there).
	// busy_timeout comes first: switching a new database to WAL needs a
	// moment of exclusive access, and a second process starting at the same
	// time must wait for it instead of failing with SQLITE_BUSY.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &SQLite{sqlStore: sqlStore{db: db, d: sqliteDialect, stmts: map[string]*sql.Stmt{}}, path: path}
	s.beforeWrite = s.checkFile
	s.durableCommit = func(ctx context.Context, conn *sql.Conn) (func(), error) {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return nil, err
		}
		return func() { conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`) }, nil //nolint:errcheck
	}
	// Open for real (sql.Open is lazy), then remember which file it is.
	if err := pingWhileBusy(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if s.ident, err = identOf(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.migrateTo(ctx, version); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// checkFile reports ErrLost when the database file is gone or another file
// took its path, and ErrReadOnly when it has lost its write permission.
func (s *SQLite) checkFile() error {
	id, err := identOf(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s no longer exists", ErrLost, s.path)
	case err != nil:
		return fmt.Errorf("store: %w", err)
	case id.dev != s.ident.dev || id.ino != s.ident.ino:
		return fmt.Errorf("%w: %s is another file now", ErrLost, s.path)
	case id.mode&0o222 == 0:
		return fmt.Errorf("%w: %s has no write permission", ErrReadOnly, s.path)
	}
	return nil
}

// dataSteps are Go steps of migrations, run in the migration's transaction
// after its SQL: what SQL alone cannot say.
var dataSteps = map[string]map[int]func(context.Context, *sql.Tx) error{
	"sqlite": {4: artifactKeysFromPaths},
}

// artifactKeysFromPaths turns the absolute paths of migration 4's renamed
// column into storage keys: <package folder>/<file name>.
func artifactKeysFromPaths(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, storage_key FROM artifacts`)
	if err != nil {
		return err
	}
	keys := map[string]string{}
	for rows.Next() {
		var id, p string
		if err := rows.Scan(&id, &p); err != nil {
			rows.Close()
			return err
		}
		if key := filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p))); key != p {
			keys[id] = key
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for id, key := range keys {
		if _, err := tx.ExecContext(ctx, `UPDATE artifacts SET storage_key = ? WHERE id = ?`, key, id); err != nil {
			return err
		}
	}
	return nil
}

// Ping implements Store: the file is still ours and a write goes through.
func (s *SQLite) Ping(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('ping', '') ON CONFLICT DO NOTHING`)
		return err
	})
	if err != nil && isReadOnly(err) {
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

// pingWhileBusy opens the first connection. Processes opening one new
// database together race to switch it to WAL; SQLite answers the losers
// SQLITE_BUSY at once, without waiting out busy_timeout (it would
// deadlock), so they try again a few times.
func pingWhileBusy(ctx context.Context, db *sql.DB) error {
	delay := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := db.PingContext(ctx)
		var se interface{ Code() int }
		if err == nil || attempt == 8 || !errors.As(err, &se) || se.Code()&0xff != 5 { // SQLITE_BUSY
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay *= 2
	}
}

// isReadOnly reports SQLite's SQLITE_READONLY family and a read-only file
// system.
func isReadOnly(err error) bool {
	var se interface{ Code() int }
	if errors.As(err, &se) && se.Code()&0xff == 8 { // SQLITE_READONLY
		return true
	}
	return errors.Is(err, syscall.EROFS)
}
