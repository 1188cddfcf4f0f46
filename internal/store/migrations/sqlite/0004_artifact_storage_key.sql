-- 4: an artifact names its file by storage key ("<package id>/<file name>"),
-- not by a path on one machine's disk. Rows stored with absolute paths keep
-- their last two path segments as key (a data step in Go, after this).
ALTER TABLE artifacts RENAME COLUMN path TO storage_key;
