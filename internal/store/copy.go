package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSourceInUse: Copy found a process working on the source store (a
// job or delivery lease still held); stop the daemons first.
var ErrSourceInUse = errors.New("store: the source store is in use (a job or delivery lease is held): stop every daemon on it first")

// copyTable is one table as Copy moves it: its columns, the key it pages
// by, and the identity column whose sequence follows the copied values.
type copyTable struct {
	name     string
	columns  []string
	key      []string
	identity string
}

// copyTables are moved in this order (events before the deliveries that
// reference them). Leases are not: a copy starts with none held.
var copyTables = []copyTable{
	{"source_messages", []string{"job", "message_id", "correlation_id", "blob_id", "content_sha256", "committed_at", "acked_at"}, []string{"job", "message_id"}, ""},
	{"package_exports", []string{"execution_id", "job", "state", "started_at", "updated_at", "last_error"}, []string{"execution_id"}, ""},
	{"artifacts", []string{"id", "job", "entity", "name", "storage_key", "content_type", "content_encoding", "bytes", "sha256", "records", "created_at", "deleted_at"}, []string{"id"}, ""},
	{"events", []string{"control_number", "event_id", "type", "topic", "job", "entity", "body", "artifact_id", "created_at", "ce_type", "source", "subject", "trace_parent", "trace_state"}, []string{"control_number"}, "control_number"},
	{"deliveries", []string{"id", "event_id", "subscription", "state", "attempt", "next_attempt_at", "lease_until", "last_status", "last_error", "created_at", "updated_at", "delivered_at", "lease_owner"}, []string{"id"}, "id"},
	{"subscription_pauses", []string{"subscription", "reason", "paused_at"}, []string{"subscription"}, ""},
	{"settings", []string{"key", "value"}, []string{"key"}, ""},
	{"runs", []string{"id", "job", "owner", "started_at", "finished_at", "outcome", "packages", "duplicates", "events", "error"}, []string{"id"}, "id"},
	{"idempotency_keys", []string{"principal", "key", "event_ids", "created_at"}, []string{"principal", "key"}, ""},
	{"subscriptions", []string{"name", "spec", "created_by", "created_at", "updated_at"}, []string{"name"}, ""},
	{"attempts", []string{"id", "delivery_id", "number", "started_at", "duration_ms", "status", "error", "response", "process"}, []string{"id"}, "id"},
	{"tokens", []string{"name", "hash", "scopes", "created_by", "created_at"}, []string{"name"}, ""},
	{"comparisons", []string{"seq", "artifact_id", "job", "entity", "event_id", "message_id", "source_kind", "execution_id", "legal_entity", "created_at"}, []string{"seq"}, "seq"},
	{"baselines", []string{"job", "entity", "artifact_id", "event_id"}, []string{"job", "entity"}, ""},
}

// CopyReport says what Copy moved.
type CopyReport struct {
	Table  string
	Rows   int // rows read from the source
	Copied int // rows new in the destination
}

// Copy copies everything from one store to another (SQLite to PostgreSQL,
// typically): source messages, exports, runs, artifacts, events with their
// ControlNumbers, deliveries with their retry state, attempts, pauses,
// settings (the signing key), runtime subscriptions, tokens, and the
// snapshots waiting to be compared and the baselines. Rows the
// destination has are kept, so running it again copies only what is new.
// It refuses a source on which any process holds a lease at now.
func Copy(ctx context.Context, from, to Store, now time.Time, progress func(CopyReport)) error {
	src, ok1 := sqlOf(from)
	dst, ok2 := sqlOf(to)
	if !ok1 || !ok2 {
		return errors.New("store: copy needs two SQL stores")
	}
	leases, err := from.JobLeases(ctx, now)
	if err != nil {
		return err
	}
	var held int
	if err := src.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE state = 'in_flight' AND lease_until >= ?`, ms(now)).Scan(&held); err != nil {
		return err
	}
	if len(leases) > 0 || held > 0 {
		return fmt.Errorf("%w (%d job lease(s), %d delivery lease(s))", ErrSourceInUse, len(leases), held)
	}
	for _, t := range copyTables {
		rep, err := copyOne(ctx, src, dst, t)
		if err != nil {
			return fmt.Errorf("store: copying %s: %w", t.name, err)
		}
		if progress != nil {
			progress(rep)
		}
	}
	// Stored subscriptions changed: every process rereads them.
	return dst.tx(ctx, func(tx *sql.Tx) error { return bumpSubscriptions(ctx, tx) })
}

func sqlOf(s Store) (*sqlStore, bool) {
	switch v := s.(type) {
	case *SQLite:
		return &v.sqlStore, true
	case *Postgres:
		return &v.sqlStore, true
	}
	return nil, false
}

// copyPage is how many rows one read and one insert move.
const copyPage = 500

func copyOne(ctx context.Context, src, dst *sqlStore, t copyTable) (CopyReport, error) {
	rep := CopyReport{Table: t.name}
	cols := strings.Join(t.columns, ", ")
	keyIdx := make([]int, len(t.key))
	for i, k := range t.key {
		for j, c := range t.columns {
			if c == k {
				keyIdx[i] = j
			}
		}
	}
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.columns)), ", ") + ")"
	ins := rowInsert{head: "INSERT INTO " + t.name + " (" + cols + ") VALUES ", row: placeholders,
		tail: " ON CONFLICT DO NOTHING", width: len(t.columns)}
	var last []any
	for {
		q := "SELECT " + cols + " FROM " + t.name
		if last != nil {
			// Keyset paging: (k1, k2) > (?, ?).
			q += " WHERE (" + strings.Join(t.key, ", ") + ") > (" + strings.TrimSuffix(strings.Repeat("?, ", len(t.key)), ", ") + ")"
		}
		q += " ORDER BY " + strings.Join(t.key, ", ") + fmt.Sprintf(" LIMIT %d", copyPage)
		rows, err := src.db.QueryContext(ctx, q, last...)
		if err != nil {
			return rep, err
		}
		var args []any
		n := 0
		for rows.Next() {
			vals := make([]any, len(t.columns))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return rep, err
			}
			last = make([]any, len(keyIdx))
			for i, j := range keyIdx {
				last[i] = vals[j]
			}
			args = append(args, vals...)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, err
		}
		if n == 0 {
			break
		}
		rep.Rows += n
		err = dst.tx(ctx, func(tx *sql.Tx) error {
			n, err := dst.insertRowsCounted(ctx, tx, ins, args, nil)
			rep.Copied += int(n)
			return err
		})
		if err != nil {
			return rep, err
		}
		if n < copyPage {
			break
		}
	}
	if t.identity != "" && dst.d.resetIdentity != "" {
		q := strings.NewReplacer("{table}", t.name, "{column}", t.identity).Replace(dst.d.resetIdentity)
		if _, err := dst.db.ExecContext(ctx, q); err != nil {
			return rep, fmt.Errorf("resetting %s.%s: %w", t.name, t.identity, err)
		}
	}
	return rep, nil
}
