-- 6: the event hub. A raise under an Idempotency-Key records the key (per
-- token) and the events it stored, so a repeat within the window answers
-- the same events and stores nothing new. Streams read events by
-- ControlNumber (the primary key): no index needed.
CREATE TABLE idempotency_keys (
	principal  TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	event_ids  TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Subscriptions created through the API (those in config.toml are not
-- stored). spec is publish's JSON. Every change bumps the one row of
-- subscription_version, which every process polls to follow changes.
CREATE TABLE subscriptions (
	name       TEXT    PRIMARY KEY,
	spec       TEXT    NOT NULL,
	created_by TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE subscription_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
);
INSERT INTO subscription_version (id, version) VALUES (1, 0);

-- The audit of deliveries: every attempt, written with its outcome.
CREATE TABLE attempts (
	id          INTEGER PRIMARY KEY,
	delivery_id INTEGER NOT NULL,
	number      INTEGER NOT NULL,
	started_at  INTEGER NOT NULL,
	duration_ms INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT    NOT NULL,
	response    TEXT    NOT NULL,
	process     TEXT    NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
CREATE INDEX attempts_age ON attempts (started_at);

-- API tokens created through /api/tokens: only the SHA-256 of the token is
-- kept; the token itself is shown once, when created.
CREATE TABLE tokens (
	name       TEXT    PRIMARY KEY,
	hash       BLOB    NOT NULL UNIQUE,
	scopes     TEXT    NOT NULL,
	created_by TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
