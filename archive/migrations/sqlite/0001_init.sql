-- zest archive schema v1 (SQLite). Times are Unix nanoseconds (UTC).
CREATE TABLE blobs (
	ref  TEXT PRIMARY KEY,   -- "sha256:<hex>" of data
	data BLOB NOT NULL
);
CREATE TABLE records (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	kind     TEXT    NOT NULL,
	agent_id TEXT    NOT NULL,
	seq      INTEGER NOT NULL,
	time_ns  INTEGER NOT NULL,
	digest   BLOB    NOT NULL UNIQUE, -- SHA-256 of body: a record is stored once
	body     BLOB    NOT NULL,        -- RFC 8785 JSON, signed
	key_id   TEXT    NOT NULL,
	sig      BLOB    NOT NULL
);
CREATE INDEX records_agent_time ON records (agent_id, kind, time_ns);
CREATE INDEX records_time ON records (time_ns);
-- One row per record still to be entered in a transparency log; written in
-- the same transaction as the record, deleted in the same transaction that
-- stores the proof.
CREATE TABLE outbox (
	record_id       INTEGER NOT NULL REFERENCES records (id),
	log             TEXT    NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_ns INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (record_id, log)
);
CREATE INDEX outbox_next ON outbox (log, next_attempt_ns);
CREATE TABLE proofs (
	record_id INTEGER NOT NULL REFERENCES records (id),
	log       TEXT    NOT NULL,
	proof     BLOB    NOT NULL, -- JSON Proof: entry, inclusion proof, checkpoint (and Rekor SET)
	PRIMARY KEY (record_id, log)
);
