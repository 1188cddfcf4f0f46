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
