package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqlStore is the Store over database/sql that both drivers share: the
// SQL is one, and where SQLite and PostgreSQL differ the dialect says how.
type sqlStore struct {
	db *sql.DB
	d  dialect
	// mu serialises write transactions where the database has one writer
	// (SQLite): waiting here avoids SQLITE_BUSY retries under load.
	mu        sync.Mutex
	closeOnce sync.Once

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // hot statements, prepared once

	// beforeWrite, when set, runs before every write transaction (SQLite:
	// the database file is still the one opened).
	beforeWrite func() error
	// durableCommit, when set, runs CommitPackage's transaction on conn so
	// that it survives power loss (SQLite: synchronous = FULL for it).
	durableCommit func(ctx context.Context, conn *sql.Conn) (restore func(), err error)
}

// dialect is what differs between the drivers' SQL.
type dialect struct {
	name string
	// serialWrites: one write transaction at a time in this process.
	serialWrites bool
	// idList selects the ids of a JSON array parameter, as one column.
	idList string
	// idListOrdered selects a JSON array parameter's strings as value with
	// their position as key.
	idListOrdered string
	// skipLocked ends a claim's inner SELECT: rows another transaction is
	// claiming are skipped, not waited for.
	skipLocked string
	// forUpdate and forShare lock a row read in a transaction (a job lease)
	// against a concurrent holder change.
	forUpdate, forShare string
	// lockEvents runs first in every transaction that assigns ControlNumbers
	// or reads an Idempotency-Key: such transactions then commit in number
	// order, so a reader of "after N" never misses a smaller number that
	// commits later.
	lockEvents string
	// lockMigrations runs first in every migration transaction.
	lockMigrations string
	// notify, in a transaction that makes deliveries due (new events, a
	// replay, a resume, a rescue, a release), tells the other processes at
	// its commit (PostgreSQL: NOTIFY; SQLite's readers poll).
	notify string
	// resetIdentity moves {table}.{column}'s generator past the highest
	// value after rows were inserted with explicit values (a copy).
	resetIdentity string
}

// migrateTo applies pending migrations up to version (0: all; the upgrade
// tests stop earlier). Several processes may start on one new database at
// the same moment: each migration runs in a transaction that excludes the
// others (SQLite: IMMEDIATE, one writer; PostgreSQL: an advisory lock) and
// reads the version again, so each step runs exactly once.
func (s *sqlStore) migrateTo(ctx context.Context, version int) error {
	steps, err := loadMigrations(s.d.name)
	if err != nil {
		return err
	}
	if version > 0 {
		steps = steps[:version]
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lockMigrations != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		return err
	}); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	for _, m := range steps {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if s.d.lockMigrations != "" {
				if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
					return err
				}
			}
			var current int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if current > len(steps) {
				return fmt.Errorf("database schema version %d is newer than this binary knows (%d): refusing to run an older exportbridge on it", current, len(steps))
			}
			if current >= m.version {
				return nil // applied, perhaps by another process just now
			}
			for _, stmt := range m.statements {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			if step := dataSteps[s.d.name][m.version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, ms(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the applied migration version.
func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *sqlStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.d.serialWrites {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if s.beforeWrite != nil {
		if err := s.beforeWrite(); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// prepared returns the statement for query, preparing it on first use:
// preparing is a large share of the cost of the small, frequent queries of
// delivery bookkeeping.
func (s *sqlStore) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

// txExec runs a prepared statement inside tx.
func (s *sqlStore) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// FindMessage implements Store.
func (s *sqlStore) FindMessage(ctx context.Context, job string, k MessageKeys) (*Message, error) {
	var conds []string
	args := []any{job}
	for col, v := range map[string]string{"correlation_id": k.CorrelationID, "blob_id": k.BlobID, "content_sha256": k.ContentSHA256} {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	if len(conds) == 0 {
		return nil, ErrNotFound
	}
	row := s.db.QueryRowContext(ctx, `SELECT message_id, correlation_id, blob_id, content_sha256, committed_at, acked_at
		FROM source_messages WHERE job = ? AND (`+strings.Join(conds, " OR ")+`) ORDER BY committed_at LIMIT 1`, args...)
	m := Message{Job: job}
	var committed, acked int64
	if err := row.Scan(&m.ID, &m.Keys.CorrelationID, &m.Keys.BlobID, &m.Keys.ContentSHA256, &committed, &acked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	m.Committed, m.Acked = fromMS(committed), fromMS(acked)
	return &m, nil
}

// MarkAcked implements Store.
func (s *sqlStore) MarkAcked(ctx context.Context, job, messageID string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE source_messages SET acked_at = ? WHERE job = ? AND message_id = ?`, ms(at), job, messageID)
		return mustAffect(res, err)
	})
}

func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// StartExport implements Store.
func (s *sqlStore) StartExport(ctx context.Context, e Export) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkLease(ctx, tx, e.Lease, e.StartedAt); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO package_exports (execution_id, job, state, started_at, updated_at) VALUES (?, ?, 'started', ?, ?)`,
			e.ExecutionID, e.Job, ms(e.StartedAt), ms(e.StartedAt))
		return err
	})
}

// OpenExport implements Store.
func (s *sqlStore) OpenExport(ctx context.Context, job string) (*Export, error) {
	return scanExport(s.db.QueryRowContext(ctx, `SELECT execution_id, job, state, started_at, updated_at, last_error FROM package_exports
		WHERE job = ? AND state = 'started' ORDER BY started_at DESC LIMIT 1`, job))
}

// Export implements Store.
func (s *sqlStore) Export(ctx context.Context, executionID string) (*Export, error) {
	return scanExport(s.db.QueryRowContext(ctx, `SELECT execution_id, job, state, started_at, updated_at, last_error FROM package_exports
		WHERE execution_id = ?`, executionID))
}

func scanExport(row *sql.Row) (*Export, error) {
	var e Export
	var started, updated int64
	if err := row.Scan(&e.ExecutionID, &e.Job, &e.State, &started, &updated, &e.LastError); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	e.StartedAt, e.UpdatedAt = fromMS(started), fromMS(updated)
	return &e, nil
}

// FinishExport implements Store.
func (s *sqlStore) FinishExport(ctx context.Context, executionID, state, lastError string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE package_exports SET state = ?, last_error = ?, updated_at = ? WHERE execution_id = ?`, state, lastError, ms(at), executionID)
		return mustAffect(res, err)
	})
}

// CommitPackage implements Store.
func (s *sqlStore) CommitPackage(ctx context.Context, p Package) ([]Event, error) {
	if s.d.serialWrites {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if s.beforeWrite != nil {
		if err := s.beforeWrite(); err != nil {
			return nil, err
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// This commit comes before an ack to FinOps: it must survive power
	// loss, not just a crash.
	if s.durableCommit != nil {
		restore, err := s.durableCommit(ctx, conn)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := s.checkLease(ctx, tx, p.Lease, p.At); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	events, err := s.commitPackage(ctx, tx, p)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return events, nil
}

// The statements of a commit, prepared once: a burst of commits spent a
// tenth of its time parsing them again.
const (
	insertMessageQuery = `INSERT INTO source_messages (job, message_id, correlation_id, blob_id, content_sha256, committed_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	closeExportQuery = `UPDATE package_exports SET state = ?, last_error = ?, updated_at = ? WHERE execution_id = ?`
)

// insertEvents stores events, assigning ControlNumbers in their order, and
// one pending delivery per subscription of each, due at at.
func (s *sqlStore) insertEvents(ctx context.Context, tx *sql.Tx, events []NewEvent, at int64) ([]Event, error) {
	if err := s.lockEvents(ctx, tx); err != nil {
		return nil, err
	}
	if err := s.notify(ctx, tx); err != nil {
		return nil, err
	}
	args := make([]any, 0, len(events)*13)
	var deliveries []any
	for _, e := range events {
		args = append(args, e.ID, e.Type, e.CEType, e.Source, e.Subject, e.Topic, e.Job, e.Entity, string(e.Body), e.ArtifactID, ms(e.CreatedAt), e.TraceParent, e.TraceState)
		for _, sub := range e.Subscriptions {
			deliveries = append(deliveries, e.ID, sub, at, at, at)
		}
	}
	numbers := make(map[string]int64, len(events))
	err := s.insertRows(ctx, tx, eventInsert, args, func(rows *sql.Rows) error {
		var id string
		var cn int64
		if err := rows.Scan(&id, &cn); err != nil {
			return err
		}
		numbers[id] = cn
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if err := s.insertRows(ctx, tx, deliveryInsert, deliveries, nil); err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	for _, e := range events {
		for _, sub := range e.Supersede {
			// Older events of the same job, entity and type still waiting for
			// this subscription: found through the pending index.
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'superseded', updated_at = ?, lease_until = 0
				WHERE id IN (SELECT d.id FROM deliveries d JOIN events e ON e.event_id = d.event_id
					WHERE d.state = 'pending' AND d.subscription = ? AND e.job = ? AND e.entity = ? AND e.type = ? AND e.event_id <> ?)`,
				at, sub, e.Job, e.Entity, e.Type, e.ID); err != nil {
				return nil, fmt.Errorf("superseding: %w", err)
			}
		}
	}
	out := make([]Event, 0, len(events))
	for _, e := range events {
		ev := e.Event
		ev.ControlNumber = numbers[e.ID]
		out = append(out, ev)
	}
	return out, nil
}

// rowInsert is a multi-row INSERT: head, then "(?, …)" per row of width
// values, then tail.
type rowInsert struct {
	head, row, tail string
	width           int
}

var (
	eventInsert = rowInsert{head: `INSERT INTO events (event_id, type, ce_type, source, subject, topic, job, entity, body, artifact_id, created_at, trace_parent, trace_state) VALUES `,
		row: `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, tail: ` RETURNING event_id, control_number`, width: 13}
	deliveryInsert = rowInsert{head: `INSERT INTO deliveries (event_id, subscription, state, next_attempt_at, created_at, updated_at) VALUES `,
		row: `(?, ?, 'pending', ?, ?, ?)`, width: 5}
	attemptInsert = rowInsert{head: `INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status, error, response, process) VALUES `,
		row: `(?, ?, ?, ?, ?, ?, ?, ?)`, width: 8}
	artifactInsert = rowInsert{head: `INSERT INTO artifacts (id, job, entity, name, storage_key, content_type, content_encoding, bytes, sha256, records, created_at) VALUES `,
		row: `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, width: 11}
)

// maxInsertRows bounds one statement's rows.
const maxInsertRows = 64

// insertRows inserts the rows in args (ins.width values each) with
// multi-row statements: a statement per row made the commit of a package
// mostly statement overhead. Chunks are powers of two, so a handful of
// prepared statements serve any count. Rows are inserted in order, so
// AUTOINCREMENT numbers follow it. scan, if set, reads the RETURNING rows.
func (s *sqlStore) insertRows(ctx context.Context, tx *sql.Tx, ins rowInsert, args []any, scan func(*sql.Rows) error) error {
	_, err := s.insertRowsCounted(ctx, tx, ins, args, scan)
	return err
}

// insertRowsCounted is insertRows returning how many rows were inserted
// (without scan: those an ON CONFLICT DO NOTHING did not skip).
func (s *sqlStore) insertRowsCounted(ctx context.Context, tx *sql.Tx, ins rowInsert, args []any, scan func(*sql.Rows) error) (int64, error) {
	var inserted int64
	for len(args) > 0 {
		n := min(len(args)/ins.width, maxInsertRows)
		for n&(n-1) != 0 { // round down to a power of two
			n &= n - 1
		}
		var q strings.Builder
		q.WriteString(ins.head)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(ins.row)
		}
		q.WriteString(ins.tail)
		st, err := s.prepared(ctx, q.String())
		if err != nil {
			return inserted, err
		}
		st = tx.StmtContext(ctx, st)
		chunk := args[:n*ins.width]
		args = args[n*ins.width:]
		if scan == nil {
			res, err := st.ExecContext(ctx, chunk...)
			if err != nil {
				return inserted, err
			}
			n, _ := res.RowsAffected()
			inserted += n
			continue
		}
		rows, err := st.QueryContext(ctx, chunk...)
		if err != nil {
			return inserted, err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return inserted, err
			}
		}
		if err := rows.Close(); err != nil {
			return inserted, err
		}
		if err := rows.Err(); err != nil {
			return inserted, err
		}
	}
	return inserted, nil
}

// execCount runs one write statement in its own transaction and returns
// the rows it changed.
func (s *sqlStore) execCount(ctx context.Context, query string, args ...any) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// notify tells the other processes, at tx's commit, that deliveries came
// due.
func (s *sqlStore) notify(ctx context.Context, tx *sql.Tx) error {
	if s.d.notify == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.notify)
	return err
}

// lockEvents takes the dialect's ControlNumber lock for the transaction.
func (s *sqlStore) lockEvents(ctx context.Context, tx *sql.Tx) error {
	if s.d.lockEvents == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.lockEvents)
	return err
}

// AppendEvents implements Store.
func (s *sqlStore) AppendEvents(ctx context.Context, events []NewEvent, at time.Time) ([]Event, error) {
	var out []Event
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.insertEvents(ctx, tx, events, ms(at))
		return err
	})
	return out, err
}

// AppendEventsOnce implements Store.
func (s *sqlStore) AppendEventsOnce(ctx context.Context, key IdempotencyKey, events []NewEvent, at time.Time) ([]Event, bool, error) {
	var out []Event
	replayed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Before the key is read: two raises with one new key then store once.
		if err := s.lockEvents(ctx, tx); err != nil {
			return err
		}
		var ids string
		err := tx.QueryRowContext(ctx, `SELECT event_ids FROM idempotency_keys WHERE principal = ? AND key = ? AND created_at >= ?`,
			key.Principal, key.Key, ms(key.Since)).Scan(&ids)
		switch {
		case err == nil:
			replayed = true
			out, err = s.eventsByID(ctx, tx, ids)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		out, err = s.insertEvents(ctx, tx, events, ms(at))
		if err != nil {
			return err
		}
		list := make([]string, len(out))
		for i, e := range out {
			list[i] = e.ID
		}
		b, _ := json.Marshal(list)
		_, err = tx.ExecContext(ctx, `INSERT INTO idempotency_keys (principal, key, event_ids, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (principal, key) DO UPDATE SET event_ids = excluded.event_ids, created_at = excluded.created_at`,
			key.Principal, key.Key, string(b), ms(at))
		return err
	})
	return out, replayed, err
}

// eventsByID reads the events whose ids the JSON array ids lists, in its
// order (ID, Topic, ControlNumber, Type).
func (s *sqlStore) eventsByID(ctx context.Context, tx *sql.Tx, ids string) ([]Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT e.event_id, e.topic, e.control_number, e.type FROM (`+s.d.idListOrdered+`) j
		JOIN events e ON e.event_id = j.value ORDER BY j.key`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.Topic, &e.ControlNumber, &e.Type); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const eventColumns = `control_number, event_id, type, ce_type, source, subject, topic, job, entity, body, artifact_id, created_at, trace_parent, trace_state`

// EventsAfter implements Store. SQLite has one writer and numbers are
// assigned inside it, so every number below the highest committed one is
// committed too.
func (s *sqlStore) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	st, err := s.prepared(ctx, `SELECT `+eventColumns+` FROM events WHERE control_number > ? ORDER BY control_number LIMIT ?`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var created int64
		if err := rows.Scan(&e.ControlNumber, &e.ID, &e.Type, &e.CEType, &e.Source, &e.Subject, &e.Topic, &e.Job, &e.Entity, &e.Body,
			&e.ArtifactID, &created, &e.TraceParent, &e.TraceState); err != nil {
			return nil, err
		}
		e.CreatedAt = fromMS(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LatestControlNumber implements Store.
func (s *sqlStore) LatestControlNumber(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(control_number), 0) FROM events`).Scan(&n)
	return n, err
}

// SweepIdempotencyKeys implements Store.
func (s *sqlStore) SweepIdempotencyKeys(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, ms(before))
}

func (s *sqlStore) commitPackage(ctx context.Context, tx *sql.Tx, p Package) ([]Event, error) {
	at := ms(p.At)
	res, err := s.txExec(ctx, tx, insertMessageQuery, p.Job, p.MessageID, p.Keys.CorrelationID, p.Keys.BlobID, p.Keys.ContentSHA256, at)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrDuplicate
	}
	artifacts := make([]any, 0, len(p.Artifacts)*artifactInsert.width)
	for _, a := range p.Artifacts {
		artifacts = append(artifacts, a.ID, a.Job, a.Entity, a.Name, a.Key, a.ContentType, a.ContentEncoding, a.Bytes, a.SHA256, a.Records, ms(a.CreatedAt))
	}
	if err := s.insertRows(ctx, tx, artifactInsert, artifacts, nil); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	out, err := s.insertEvents(ctx, tx, p.Events, at)
	if err != nil {
		return nil, err
	}
	for _, c := range p.Comparisons {
		if _, err := tx.ExecContext(ctx, `INSERT INTO comparisons (artifact_id, job, entity, event_id, message_id, source_kind, execution_id, legal_entity, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ArtifactID, c.Job, c.Entity, c.EventID, c.MessageID, c.SourceKind, c.ExecutionID, c.LegalEntity, ms(c.CreatedAt)); err != nil {
			return nil, fmt.Errorf("comparisons: %w", err)
		}
	}
	if p.ExecutionID != "" {
		state := ExportCommitted
		if p.ExportError != "" {
			state = ExportFailed
		}
		if _, err := s.txExec(ctx, tx, closeExportQuery, state, p.ExportError, at, p.ExecutionID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const deliveryColumns = `d.id, d.subscription, d.state, d.attempt, d.next_attempt_at, d.lease_owner, d.lease_until, d.last_status, d.last_error,
	d.created_at, d.updated_at, d.delivered_at,
	e.event_id, e.control_number, e.type, e.ce_type, e.source, e.subject, e.topic, e.job, e.entity, e.body, e.artifact_id, e.created_at, e.trace_parent, e.trace_state,
	COALESCE(a.id, ''), COALESCE(a.name, ''), COALESCE(a.storage_key, ''), COALESCE(a.content_type, ''), COALESCE(a.content_encoding, ''),
	COALESCE(a.bytes, 0), COALESCE(a.sha256, ''), COALESCE(a.records, 0), COALESCE(a.created_at, 0), COALESCE(a.deleted_at, 0)`

const deliveryJoin = ` FROM deliveries d JOIN events e ON e.event_id = d.event_id LEFT JOIN artifacts a ON a.id = e.artifact_id `

func scanDeliveries(rows *sql.Rows) ([]Delivery, error) {
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var next, lease, created, updated, delivered, evCreated, aCreated, aDeleted int64
		var body string
		var a Artifact
		if err := rows.Scan(&d.ID, &d.Subscription, &d.State, &d.Attempt, &next, &d.LeaseOwner, &lease, &d.LastStatus, &d.LastError,
			&created, &updated, &delivered,
			&d.Event.ID, &d.Event.ControlNumber, &d.Event.Type, &d.Event.CEType, &d.Event.Source, &d.Event.Subject, &d.Event.Topic, &d.Event.Job, &d.Event.Entity, &body, &d.Event.ArtifactID, &evCreated, &d.Event.TraceParent, &d.Event.TraceState,
			&a.ID, &a.Name, &a.Key, &a.ContentType, &a.ContentEncoding, &a.Bytes, &a.SHA256, &a.Records, &aCreated, &aDeleted); err != nil {
			return nil, err
		}
		d.NextAttemptAt, d.LeaseUntil, d.CreatedAt, d.UpdatedAt, d.DeliveredAt = fromMS(next), fromMS(lease), fromMS(created), fromMS(updated), fromMS(delivered)
		d.Event.Body, d.Event.CreatedAt = []byte(body), fromMS(evCreated)
		if a.ID != "" {
			a.Job, a.Entity = d.Event.Job, d.Event.Entity
			a.CreatedAt, a.DeletedAt = fromMS(aCreated), fromMS(aDeleted)
			d.Artifact = &a
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// claimQuery claims due rows: one statement, so no two claims share a row
// (SQLite has one writer; PostgreSQL skips rows another claim has locked).
const claimQuery = `UPDATE deliveries SET state = 'in_flight', attempt = attempt + 1, lease_owner = ?, lease_until = ?, updated_at = ?
	WHERE id IN (SELECT id FROM deliveries WHERE subscription = ? AND state = 'pending' AND next_attempt_at <= ?
	             ORDER BY next_attempt_at, id LIMIT ?%s)
	RETURNING id`

// claimedQuery reads claimed rows by id, only the columns an attempt needs
// (the claim set the rest). Not ORDER BY: sorting made SQLite copy every
// row, event body included, through a temporary b-tree; Go sorts them.
const claimedQuery = `SELECT d.id, d.attempt, d.next_attempt_at, d.created_at,
	e.event_id, e.control_number, e.type, e.ce_type, e.source, e.subject, e.topic, e.job, e.entity, e.body, e.artifact_id, e.created_at, e.trace_parent, e.trace_state,
	COALESCE(a.id, ''), COALESCE(a.name, ''), COALESCE(a.storage_key, ''), COALESCE(a.deleted_at, 0)` + deliveryJoin + `WHERE d.id IN (%s)`

// ClaimDue implements Store.
func (s *sqlStore) ClaimDue(ctx context.Context, owner, subscription string, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	var ids []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st, err := s.prepared(ctx, fmt.Sprintf(claimQuery, s.d.skipLocked))
		if err != nil {
			return err
		}
		rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, owner, ms(leaseUntil), ms(now), subscription, ms(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	// One statement for any number of ids (a JSON array), prepared once.
	list, _ := json.Marshal(ids)
	st, err := s.prepared(ctx, fmt.Sprintf(claimedQuery, s.d.idList))
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Delivery, 0, len(ids))
	for rows.Next() {
		d := Delivery{Subscription: subscription, State: StateInFlight, LeaseOwner: owner, LeaseUntil: fromMS(ms(leaseUntil)), UpdatedAt: fromMS(ms(now))}
		var next, created, evCreated, aDeleted int64
		var body []byte
		var a Artifact
		if err := rows.Scan(&d.ID, &d.Attempt, &next, &created,
			&d.Event.ID, &d.Event.ControlNumber, &d.Event.Type, &d.Event.CEType, &d.Event.Source, &d.Event.Subject, &d.Event.Topic, &d.Event.Job, &d.Event.Entity, &body, &d.Event.ArtifactID, &evCreated, &d.Event.TraceParent, &d.Event.TraceState,
			&a.ID, &a.Name, &a.Key, &aDeleted); err != nil {
			return nil, err
		}
		d.NextAttemptAt, d.CreatedAt = fromMS(next), fromMS(created)
		d.Event.Body, d.Event.CreatedAt = body, fromMS(evCreated)
		if a.ID != "" {
			a.Job, a.Entity, a.DeletedAt = d.Event.Job, d.Event.Entity, fromMS(aDeleted)
			d.Artifact = &a
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

const completeQuery = `UPDATE deliveries SET state = ?, next_attempt_at = ?, lease_owner = '', lease_until = 0, last_status = ?, last_error = ?,
	updated_at = ?, delivered_at = ? WHERE id = ? AND state = 'in_flight' AND lease_owner = ? AND lease_until >= ?`

// Complete implements Store.
func (s *sqlStore) Complete(ctx context.Context, owner string, cs ...Completion) ([]int64, error) {
	var stale []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stale = stale[:0]
		var attempts []any
		st, err := s.prepared(ctx, completeQuery)
		if err != nil {
			return err
		}
		st = tx.StmtContext(ctx, st)
		for _, c := range cs {
			o := c.Outcome
			var delivered int64
			if o.State == StateDelivered {
				delivered = ms(o.At)
			}
			res, err := st.ExecContext(ctx, o.State, ms(o.NextAt), o.Status, truncate(o.Error, 2000), ms(o.At), delivered, c.ID, owner, ms(o.At))
			if err := mustAffect(res, err); errors.Is(err, ErrNotFound) {
				stale = append(stale, c.ID)
			} else if err != nil {
				return err
			}
			if a := c.Attempt; a != nil {
				attempts = append(attempts, c.ID, a.Number, ms(a.StartedAt), a.Duration.Milliseconds(), a.Status, truncate(a.Error, 2000), truncate(a.Response, 1024), owner)
			}
		}
		return s.insertRows(ctx, tx, attemptInsert, attempts, nil)
	})
	return stale, err
}

// truncate cuts s to at most n bytes of valid UTF-8.
// It drops NUL bytes too, which PostgreSQL's text refuses.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
}

// Attempts implements Store.
func (s *sqlStore) Attempts(ctx context.Context, deliveryID int64) ([]Attempt, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT number, started_at, duration_ms, status, error, response, process FROM attempts
		WHERE delivery_id = ? ORDER BY id`, deliveryID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		a := Attempt{DeliveryID: deliveryID}
		var started, dur int64
		if err := rows.Scan(&a.Number, &started, &dur, &a.Status, &a.Error, &a.Response, &a.Process); err != nil {
			return nil, err
		}
		a.StartedAt, a.Duration = fromMS(started), time.Duration(dur)*time.Millisecond
		out = append(out, a)
	}
	return out, rows.Err()
}

// SweepAttempts implements Store.
func (s *sqlStore) SweepAttempts(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, `DELETE FROM attempts WHERE started_at < ?`, ms(before))
}

// Release implements Store.
func (s *sqlStore) Release(ctx context.Context, owner string, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	list, _ := json.Marshal(ids)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.notify(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', attempt = attempt - 1, lease_owner = '', lease_until = 0
			WHERE id IN (`+s.d.idList+`) AND state = 'in_flight' AND lease_owner = ?`, string(list), owner)
		return err
	})
}

// RenewLeases implements Store.
func (s *sqlStore) RenewLeases(ctx context.Context, owner string, now, until time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET lease_until = ? WHERE state = 'in_flight' AND lease_owner = ? AND lease_until >= ?`,
			ms(until), owner, ms(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Rescue implements Store.
func (s *sqlStore) Rescue(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.notify(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_owner = '', lease_until = 0, updated_at = ?
			WHERE state = 'in_flight' AND lease_until < ?`, ms(now), ms(now), ms(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	switch f.State {
	case "":
	case StatePending, StateInFlight, StateDelivered, StateDead, StateSuperseded:
		// A literal, so the partial index of that state can serve it.
		conds = append(conds, "d.state = '"+f.State+"'")
	default:
		conds = append(conds, "d.state = ?")
		args = append(args, f.State)
	}
	if f.Subscription != "" {
		conds = append(conds, "d.subscription = ?")
		args = append(args, f.Subscription)
	}
	if f.ID != 0 {
		conds = append(conds, "d.id = ?")
		args = append(args, f.ID)
	}
	if f.Job != "" {
		conds = append(conds, "e.job = ?")
		args = append(args, f.Job)
	}
	if f.Entity != "" {
		conds = append(conds, "e.entity = ?")
		args = append(args, f.Entity)
	}
	if !f.Since.IsZero() {
		conds = append(conds, "d.created_at >= ?")
		args = append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "d.created_at < ?")
		args = append(args, ms(f.Until))
	}
	if f.Before != 0 {
		conds = append(conds, "d.id < ?")
		args = append(args, f.Before)
	}
	if len(f.EventIDs) > 0 {
		conds = append(conds, "d.event_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.EventIDs)), ",")+")")
		for _, id := range f.EventIDs {
			args = append(args, id)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Replay implements Store.
func (s *sqlStore) Replay(ctx context.Context, f Filter, now time.Time) (int, error) {
	if f.State == "" {
		f.State = StateDead
	}
	if f.State == StateInFlight {
		return 0, errors.New("store: in-flight deliveries cannot be replayed")
	}
	where, args := f.where()
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.notify(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', attempt = 0, next_attempt_at = ?, lease_until = 0, updated_at = ?, delivered_at = 0
			WHERE id IN (SELECT d.id FROM deliveries d JOIN events e ON e.event_id = d.event_id`+where+`)`, append([]any{ms(now), ms(now)}, args...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Deliveries implements Store.
func (s *sqlStore) Deliveries(ctx context.Context, f Filter) ([]Delivery, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryColumns+deliveryJoin+where+` ORDER BY d.id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return scanDeliveries(rows)
}

// CountDeliveries implements Store.
func (s *sqlStore) CountDeliveries(ctx context.Context, f Filter) (int, error) {
	where, args := f.where()
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries d JOIN events e ON e.event_id = d.event_id`+where, args...).Scan(&n)
	return n, err
}

// Counts implements Store. Each count but delivered reads a partial index;
// delivered rows are the rest of the table, which SQLite counts without
// reading rows.
func (s *sqlStore) Counts(ctx context.Context) (map[string]int, error) {
	var total, pending, inFlight, dead, superseded int
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM deliveries),
		(SELECT COUNT(*) FROM deliveries WHERE state = 'pending'),
		(SELECT COUNT(*) FROM deliveries WHERE state = 'in_flight'),
		(SELECT COUNT(*) FROM deliveries WHERE state = 'dead'),
		(SELECT COUNT(*) FROM deliveries WHERE state = 'superseded')`).Scan(&total, &pending, &inFlight, &dead, &superseded)
	if err != nil {
		return nil, err
	}
	return map[string]int{StatePending: pending, StateInFlight: inFlight, StateDelivered: total - pending - inFlight - dead - superseded,
		StateDead: dead, StateSuperseded: superseded}, nil
}

// bumpSubscriptions records a change of the stored subscriptions.
func bumpSubscriptions(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE subscription_version SET version = version + 1 WHERE id = 1`)
	return err
}

// CreateSubscription stores a new subscription; ErrExists if the name is
// taken.
func (s *sqlStore) CreateSubscription(ctx context.Context, sub StoredSubscription) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (name, spec, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, sub.Name, string(sub.Spec), sub.CreatedBy, ms(sub.CreatedAt), ms(sub.CreatedAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscription %q: %w", sub.Name, ErrExists)
		}
		return bumpSubscriptions(ctx, tx)
	})
}

// UpdateSubscription replaces a stored subscription's spec; ErrNotFound if
// there is none.
func (s *sqlStore) UpdateSubscription(ctx context.Context, name string, spec []byte, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET spec = ?, updated_at = ? WHERE name = ?`, string(spec), ms(at), name)
		if err := mustAffect(res, err); err != nil {
			return fmt.Errorf("subscription %q: %w", name, err)
		}
		return bumpSubscriptions(ctx, tx)
	})
}

// DeleteSubscription removes a stored subscription and its pause;
// ErrNotFound if there is none. Its deliveries stay, pending, as for a
// subscription removed from the configuration: one created again under
// the name starts active and sends them.
func (s *sqlStore) DeleteSubscription(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE name = ?`, name)
		if err := mustAffect(res, err); err != nil {
			return fmt.Errorf("subscription %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscription_pauses WHERE subscription = ?`, name); err != nil {
			return err
		}
		return bumpSubscriptions(ctx, tx)
	})
}

// StoredSubscriptions returns every stored subscription, by name, and the
// version they are at.
func (s *sqlStore) StoredSubscriptions(ctx context.Context) ([]StoredSubscription, int64, error) {
	var out []StoredSubscription
	var version int64
	// The version is read first: a change between the two reads leaves an
	// older version with newer rows, and the next poll reads them again.
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM subscription_version WHERE id = 1`).Scan(&version); err != nil {
		return nil, 0, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, spec, created_by, created_at, updated_at FROM subscriptions ORDER BY name`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var sub StoredSubscription
		var spec string
		var created, updated int64
		if err := rows.Scan(&sub.Name, &spec, &sub.CreatedBy, &created, &updated); err != nil {
			return nil, 0, err
		}
		sub.Spec, sub.CreatedAt, sub.UpdatedAt = []byte(spec), fromMS(created), fromMS(updated)
		out = append(out, sub)
	}
	err = rows.Err()
	return out, version, err
}

// SubscriptionsVersion returns the version of the stored subscriptions: it
// changes with every create, update and delete.
func (s *sqlStore) SubscriptionsVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM subscription_version WHERE id = 1`).Scan(&v)
	return v, err
}

// CreateToken implements Store; ErrExists if the name is taken.
func (s *sqlStore) CreateToken(ctx context.Context, t StoredToken) error {
	scopes, _ := json.Marshal(t.Scopes)
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO tokens (name, hash, scopes, created_by, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, t.Name, t.Hash, string(scopes), t.CreatedBy, ms(t.CreatedAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %q: %w", t.Name, ErrExists)
		}
		return nil
	})
}

// DeleteToken implements Store.
func (s *sqlStore) DeleteToken(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE name = ?`, name)
		if err := mustAffect(res, err); err != nil {
			return fmt.Errorf("token %q: %w", name, err)
		}
		return nil
	})
}

const tokenColumns = `name, hash, scopes, created_by, created_at`

func scanToken(sc interface{ Scan(...any) error }) (StoredToken, error) {
	var t StoredToken
	var scopes string
	var created int64
	if err := sc.Scan(&t.Name, &t.Hash, &scopes, &t.CreatedBy, &created); err != nil {
		return t, err
	}
	t.CreatedAt = fromMS(created)
	return t, json.Unmarshal([]byte(scopes), &t.Scopes)
}

// Tokens implements Store.
func (s *sqlStore) Tokens(ctx context.Context) ([]StoredToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TokenByHash implements Store; ErrNotFound when no token has it.
func (s *sqlStore) TokenByHash(ctx context.Context, hash []byte) (StoredToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// CreateSession implements Store.
func (s *sqlStore) CreateSession(ctx context.Context, se Session) error {
	_, err := s.execCount(ctx, `INSERT INTO sessions (hash, token_hash, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		se.Hash, se.TokenHash, se.CSRF, ms(se.CreatedAt), ms(se.ExpiresAt))
	return err
}

// SessionByHash implements Store.
func (s *sqlStore) SessionByHash(ctx context.Context, hash []byte, now time.Time) (Session, error) {
	se := Session{Hash: hash}
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT token_hash, csrf, created_at, expires_at FROM sessions WHERE hash = ? AND expires_at > ?`, hash, ms(now)).
		Scan(&se.TokenHash, &se.CSRF, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return se, ErrNotFound
	}
	se.CreatedAt, se.ExpiresAt = fromMS(created), fromMS(expires)
	return se, err
}

// DeleteSession implements Store; deleting a missing session is no error
// (logging out twice).
func (s *sqlStore) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.execCount(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
	return err
}

// SweepSessions implements Store.
func (s *sqlStore) SweepSessions(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, `DELETE FROM sessions WHERE expires_at < ?`, ms(before))
}

// Pause implements Store.
func (s *sqlStore) Pause(ctx context.Context, subscription, reason string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO subscription_pauses (subscription, reason, paused_at) VALUES (?, ?, ?)
			ON CONFLICT (subscription) DO UPDATE SET reason = excluded.reason, paused_at = excluded.paused_at`, subscription, reason, ms(at))
		return err
	})
}

// Resume implements Store.
func (s *sqlStore) Resume(ctx context.Context, subscription string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.notify(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM subscription_pauses WHERE subscription = ?`, subscription)
		return err
	})
}

// Paused implements Store.
func (s *sqlStore) Paused(ctx context.Context) (map[string]string, error) {
	st, err := s.prepared(ctx, `SELECT subscription, reason FROM subscription_pauses`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var sub, reason string
		if err := rows.Scan(&sub, &reason); err != nil {
			return nil, err
		}
		out[sub] = reason
	}
	return out, rows.Err()
}

const artifactColumns = `id, job, entity, name, storage_key, content_type, content_encoding, bytes, sha256, records, created_at, deleted_at`

func scanArtifact(sc interface{ Scan(...any) error }) (*Artifact, error) {
	var a Artifact
	var created, deleted int64
	if err := sc.Scan(&a.ID, &a.Job, &a.Entity, &a.Name, &a.Key, &a.ContentType, &a.ContentEncoding, &a.Bytes, &a.SHA256, &a.Records, &created, &deleted); err != nil {
		return nil, err
	}
	a.CreatedAt, a.DeletedAt = fromMS(created), fromMS(deleted)
	return &a, nil
}

// Artifact implements Store.
func (s *sqlStore) Artifact(ctx context.Context, id string) (*Artifact, error) {
	a, err := scanArtifact(s.db.QueryRowContext(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return a, err
}

// ExpiredArtifacts implements Store.
func (s *sqlStore) ExpiredArtifacts(ctx context.Context, cutoff time.Time, limit int) ([]Artifact, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE deleted_at = 0 AND created_at < ?
		AND id NOT IN (SELECT artifact_id FROM baselines) AND id NOT IN (SELECT artifact_id FROM comparisons)
		ORDER BY created_at LIMIT ?`, ms(cutoff), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// PendingComparisons implements Store.
func (s *sqlStore) PendingComparisons(ctx context.Context, job string) ([]Comparison, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT artifact_id, job, entity, event_id, message_id, source_kind, execution_id, legal_entity, created_at
		FROM comparisons WHERE job = ? ORDER BY seq`, job)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Comparison
	for rows.Next() {
		var c Comparison
		var at int64
		if err := rows.Scan(&c.ArtifactID, &c.Job, &c.Entity, &c.EventID, &c.MessageID, &c.SourceKind, &c.ExecutionID, &c.LegalEntity, &at); err != nil {
			return nil, err
		}
		c.CreatedAt = fromMS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Baseline implements Store.
func (s *sqlStore) Baseline(ctx context.Context, job, entity string) (*Baseline, error) {
	b := Baseline{Job: job, Entity: entity}
	err := s.db.QueryRowContext(ctx, `SELECT artifact_id, event_id FROM baselines WHERE job = ? AND entity = ?`, job, entity).Scan(&b.ArtifactID, &b.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return &b, err
}

// CompleteComparison implements Store.
func (s *sqlStore) CompleteComparison(ctx context.Context, d ComparisonDone) ([]Event, error) {
	var events []Event
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkLease(ctx, tx, d.Lease, d.At); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM comparisons WHERE artifact_id = ?`, d.Comparison.ArtifactID)
		if err := mustAffect(res, err); err != nil {
			return fmt.Errorf("comparison of %s: %w", d.Comparison.ArtifactID, err)
		}
		var arts []any
		for _, a := range d.Artifacts {
			arts = append(arts, a.ID, a.Job, a.Entity, a.Name, a.Key, a.ContentType, a.ContentEncoding, a.Bytes, a.SHA256, a.Records, ms(a.CreatedAt))
		}
		if err := s.insertRows(ctx, tx, artifactInsert, arts, nil); err != nil {
			return fmt.Errorf("artifacts: %w", err)
		}
		if len(d.Events) > 0 {
			if events, err = s.insertEvents(ctx, tx, d.Events, ms(d.At)); err != nil {
				return err
			}
		}
		if d.Rebase {
			c := d.Comparison
			_, err := tx.ExecContext(ctx, `INSERT INTO baselines (job, entity, artifact_id, event_id) VALUES (?, ?, ?, ?)
				ON CONFLICT (job, entity) DO UPDATE SET artifact_id = excluded.artifact_id, event_id = excluded.event_id`,
				c.Job, c.Entity, c.ArtifactID, c.EventID)
			return err
		}
		return nil
	})
	return events, err
}

// LiveArtifactKeys implements Store.
func (s *sqlStore) LiveArtifactKeys(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT storage_key FROM artifacts WHERE deleted_at = 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkArtifactDeleted implements Store.
func (s *sqlStore) MarkArtifactDeleted(ctx context.Context, id string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE artifacts SET deleted_at = ? WHERE id = ?`, ms(at), id)
		return mustAffect(res, err)
	})
}

// SetSettingIfAbsent implements Store.
func (s *sqlStore) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	var out string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, key, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&out)
	})
	return out, err
}

// Close implements Store; it is idempotent.
func (s *sqlStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stmtMu.Lock()
		for _, st := range s.stmts {
			st.Close()
		}
		s.stmtMu.Unlock()
		err = s.db.Close()
	})
	return err
}
