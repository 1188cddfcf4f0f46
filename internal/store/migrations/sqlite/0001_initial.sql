-- 1: the initial schema. Times are Unix milliseconds (INTEGER) so the SQL stays portable.
CREATE TABLE source_messages (
	job            TEXT    NOT NULL,
	message_id     TEXT    NOT NULL,
	correlation_id TEXT    NOT NULL DEFAULT '',
	blob_id        TEXT    NOT NULL DEFAULT '',
	content_sha256 TEXT    NOT NULL DEFAULT '',
	committed_at   INTEGER NOT NULL,
	acked_at       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (job, message_id)
);
CREATE INDEX source_messages_corr ON source_messages (job, correlation_id);
CREATE INDEX source_messages_blob ON source_messages (job, blob_id);
CREATE INDEX source_messages_hash ON source_messages (job, content_sha256);

CREATE TABLE package_exports (
	execution_id TEXT    PRIMARY KEY,
	job          TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	started_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX package_exports_open ON package_exports (job, state);

CREATE TABLE artifacts (
	id               TEXT    PRIMARY KEY,
	job              TEXT    NOT NULL,
	entity           TEXT    NOT NULL,
	name             TEXT    NOT NULL,
	path             TEXT    NOT NULL,
	content_type     TEXT    NOT NULL,
	content_encoding TEXT    NOT NULL DEFAULT '',
	bytes            INTEGER NOT NULL,
	sha256           TEXT    NOT NULL,
	records          INTEGER NOT NULL,
	created_at       INTEGER NOT NULL,
	deleted_at       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX artifacts_live ON artifacts (deleted_at, created_at);

CREATE TABLE events (
	control_number INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id       TEXT    NOT NULL UNIQUE,
	type           TEXT    NOT NULL,
	topic          TEXT    NOT NULL,
	job            TEXT    NOT NULL,
	entity         TEXT    NOT NULL DEFAULT '',
	body           TEXT    NOT NULL,
	artifact_id    TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL
);

CREATE TABLE deliveries (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id        TEXT    NOT NULL REFERENCES events (event_id),
	subscription    TEXT    NOT NULL,
	state           TEXT    NOT NULL,
	attempt         INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_until     INTEGER NOT NULL DEFAULT 0,
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	delivered_at    INTEGER NOT NULL DEFAULT 0,
	UNIQUE (event_id, subscription)
);
CREATE INDEX deliveries_due ON deliveries (subscription, state, next_attempt_at);
CREATE INDEX deliveries_lease ON deliveries (state, lease_until);

CREATE TABLE subscription_pauses (
	subscription TEXT    PRIMARY KEY,
	reason       TEXT    NOT NULL,
	paused_at    INTEGER NOT NULL
);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
