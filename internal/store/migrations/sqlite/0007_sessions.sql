-- 7: sessions of the web page. A session names the token it was started
-- with (by hash, so a deleted token ends its sessions) and expires; only
-- the SHA-256 of the session id is kept.
CREATE TABLE sessions (
	hash       BLOB    PRIMARY KEY,
	token_hash BLOB    NOT NULL,
	csrf       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
