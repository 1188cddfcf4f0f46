-- 2: sessions of the web page (see SQLite's 0007).
CREATE TABLE sessions (
	hash       BYTEA  PRIMARY KEY,
	token_hash BYTEA  NOT NULL,
	csrf       TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
