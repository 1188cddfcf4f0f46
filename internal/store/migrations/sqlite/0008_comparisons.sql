-- 8: change events. A committed snapshot of an entity with key columns
-- waits in comparisons until it is compared with the baseline of its job
-- and entity (the newest snapshot compared before it); then it becomes the
-- baseline. Retention keeps every artifact that is a baseline or waits
-- here.
CREATE TABLE comparisons (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order: snapshots are compared in it
	artifact_id TEXT    NOT NULL UNIQUE,
	job         TEXT    NOT NULL,
	entity      TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	message_id  TEXT    NOT NULL,
	source_kind TEXT    NOT NULL,
	execution_id TEXT   NOT NULL,
	legal_entity TEXT   NOT NULL,
	created_at  INTEGER NOT NULL
);
CREATE INDEX comparisons_job ON comparisons (job, seq);
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
