package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// AcquireJobLease implements Store.
func (s *sqlStore) AcquireJobLease(ctx context.Context, job, owner string, now, until time.Time) (JobLease, error) {
	l := JobLease{Job: job, Owner: owner, ExpiresAt: until}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// A job's row exists from its first acquisition on (token 0, expired),
		// so concurrent first acquisitions lock one row instead of racing to
		// insert it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_leases (job, owner, token, expires_at) VALUES (?, '', 0, 0) ON CONFLICT DO NOTHING`, job); err != nil {
			return err
		}
		var cur JobLease
		var expires int64
		err := tx.QueryRowContext(ctx, `SELECT owner, token, expires_at FROM job_leases WHERE job = ?`+s.d.forUpdate, job).Scan(&cur.Owner, &cur.Token, &expires)
		switch {
		case err != nil:
			return err
		case expires >= ms(now) && cur.Owner != owner:
			return &LeaseHeldError{Job: job, Owner: cur.Owner, ExpiresAt: fromMS(expires)}
		}
		// Free, expired, or ours from an earlier run: a new holding, a new token.
		l.Token = cur.Token + 1
		if _, err := tx.ExecContext(ctx, `UPDATE job_leases SET owner = ?, token = ?, expires_at = ? WHERE job = ?`, owner, l.Token, ms(until), job); err != nil {
			return err
		}
		// Runs left "running" by a holder that is gone were abandoned.
		_, err = tx.ExecContext(ctx, `UPDATE runs SET outcome = ?, finished_at = ? WHERE job = ? AND outcome = ?`, RunAbandoned, ms(now), job, RunRunning)
		return err
	})
	return l, err
}

// RenewJobLease implements Store.
func (s *sqlStore) RenewJobLease(ctx context.Context, l JobLease, now, until time.Time) (JobLease, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE job_leases SET expires_at = ? WHERE job = ? AND owner = ? AND token = ? AND expires_at >= ?`,
			ms(until), l.Job, l.Owner, l.Token, ms(now))
		if err := mustAffect(res, err); errors.Is(err, ErrNotFound) {
			return ErrLeaseLost
		} else if err != nil {
			return err
		}
		return nil
	})
	if err == nil {
		l.ExpiresAt = until
	}
	return l, err
}

// ReleaseJobLease implements Store.
func (s *sqlStore) ReleaseJobLease(ctx context.Context, l JobLease) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE job_leases SET expires_at = 0 WHERE job = ? AND owner = ? AND token = ?`, l.Job, l.Owner, l.Token)
		return err
	})
}

// checkLease is the fence inside a write transaction: l must still be held.
func (s *sqlStore) checkLease(ctx context.Context, tx *sql.Tx, l *JobLease, now time.Time) error {
	if l == nil {
		return nil
	}
	var one int
	// Locked until the commit: a new holder waits for it (PostgreSQL).
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM job_leases WHERE job = ? AND owner = ? AND token = ? AND expires_at >= ?`+s.d.forShare,
		l.Job, l.Owner, l.Token, ms(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrLeaseLost
	}
	return err
}

// StartRun implements Store.
func (s *sqlStore) StartRun(ctx context.Context, r Run) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO runs (job, owner, started_at, outcome) VALUES (?, ?, ?, ?) RETURNING id`,
			r.Job, r.Owner, ms(r.StartedAt), RunRunning).Scan(&id)
	})
	return id, err
}

// FinishRun implements Store.
func (s *sqlStore) FinishRun(ctx context.Context, r Run) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET finished_at = ?, outcome = ?, packages = ?, duplicates = ?, events = ?, error = ? WHERE id = ?`,
			ms(r.FinishedAt), r.Outcome, r.Packages, r.Duplicates, r.Events, r.Error, r.ID)
		return mustAffect(res, err)
	})
}

// Runs implements Store.
func (s *sqlStore) Runs(ctx context.Context, job string, limit int) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, job, owner, started_at, finished_at, outcome, packages, duplicates, events, error
		FROM runs WHERE job = ? ORDER BY id DESC LIMIT ?`, job, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started, finished int64
		if err := rows.Scan(&r.ID, &r.Job, &r.Owner, &started, &finished, &r.Outcome, &r.Packages, &r.Duplicates, &r.Events, &r.Error); err != nil {
			return nil, err
		}
		r.StartedAt, r.FinishedAt = fromMS(started), fromMS(finished)
		out = append(out, r)
	}
	return out, rows.Err()
}

// JobLeases implements Store.
func (s *sqlStore) JobLeases(ctx context.Context, now time.Time) (map[string]JobLease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job, owner, token, expires_at FROM job_leases WHERE expires_at >= ?`, ms(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]JobLease{}
	for rows.Next() {
		var l JobLease
		var expires int64
		if err := rows.Scan(&l.Job, &l.Owner, &l.Token, &expires); err != nil {
			return nil, err
		}
		l.ExpiresAt = fromMS(expires)
		out[l.Job] = l
	}
	return out, rows.Err()
}
