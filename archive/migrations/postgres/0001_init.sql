-- zest archive schema v1 (PostgreSQL). Times are Unix nanoseconds (UTC).
--
-- Years of data: records grows by (agents × rounds/day); at 10 k agents
-- polled every 2 s that is ~430 M rows a day. The plan (README "Archive:
-- years of data") is declarative RANGE partitioning of records, outbox and
-- proofs by month on time_ns, created ahead by `zest archive migrate`, with
-- old months detached and exported as audit bundles rather than deleted.
-- v1 keeps one table: the unique digest and the outbox/proof foreign keys
-- would otherwise have to include time_ns, which a later migration adds.
CREATE TABLE blobs (
	ref  TEXT PRIMARY KEY,
	data BYTEA NOT NULL
);
CREATE TABLE records (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind     TEXT   NOT NULL,
	agent_id TEXT   NOT NULL,
	seq      BIGINT NOT NULL,
	time_ns  BIGINT NOT NULL,
	digest   BYTEA  NOT NULL UNIQUE,
	body     BYTEA  NOT NULL,
	key_id   TEXT   NOT NULL,
	sig      BYTEA  NOT NULL
);
CREATE INDEX records_agent_time ON records (agent_id, kind, time_ns);
CREATE INDEX records_time ON records USING BRIN (time_ns);
CREATE TABLE outbox (
	record_id       BIGINT  NOT NULL REFERENCES records (id),
	log             TEXT    NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_ns BIGINT  NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (record_id, log)
);
CREATE INDEX outbox_next ON outbox (log, next_attempt_ns);
CREATE TABLE proofs (
	record_id BIGINT NOT NULL REFERENCES records (id),
	log       TEXT   NOT NULL,
	proof     BYTEA  NOT NULL,
	PRIMARY KEY (record_id, log)
);
