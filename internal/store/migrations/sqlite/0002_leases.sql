-- 2: several processes on one store. A delivery lease names its owner (a
-- process instance), job leases carry a fencing token that grows with every
-- new holder, and every run of a job is recorded.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';

CREATE TABLE job_leases (
	job        TEXT    PRIMARY KEY,
	owner      TEXT    NOT NULL,
	token      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);

CREATE TABLE runs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	job         TEXT    NOT NULL,
	owner       TEXT    NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0,
	outcome     TEXT    NOT NULL DEFAULT 'running',
	packages    INTEGER NOT NULL DEFAULT 0,
	duplicates  INTEGER NOT NULL DEFAULT 0,
	events      INTEGER NOT NULL DEFAULT 0,
	error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX runs_job ON runs (job, id);
