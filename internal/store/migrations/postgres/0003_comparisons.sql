-- 3: change events (see SQLite's 0008).
CREATE TABLE comparisons (
	artifact_id TEXT   PRIMARY KEY,
	job         TEXT   NOT NULL,
	entity      TEXT   NOT NULL,
	event_id    TEXT   NOT NULL,
	message_id  TEXT   NOT NULL,
	source_kind TEXT   NOT NULL,
	execution_id TEXT  NOT NULL,
	legal_entity TEXT  NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX comparisons_job ON comparisons (job, created_at);
CREATE TABLE baselines (
	job         TEXT NOT NULL,
	entity      TEXT NOT NULL,
	artifact_id TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	PRIMARY KEY (job, entity)
);

-- Deliveries a newer snapshot superseded (supersede = true), counted by
-- Counts without reading the delivered rows.
CREATE INDEX deliveries_superseded ON deliveries (subscription) WHERE state = 'superseded';
