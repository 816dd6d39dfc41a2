package archive

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"
)

// Store is what the archive needs from a database: append records with
// their blobs and outbox rows atomically, read them back by agent and
// time, and work the outbox. SQLite and PostgreSQL implement it and pass
// the same conformance suite (storetest_test.go).
type Store interface {
	// Append commits the entries, their blobs (deduplicated by
	// reference) and, when log is not empty, one outbox row per record in
	// one transaction. A record already stored (same digest) is not
	// stored again; its existing id is returned.
	Append(ctx context.Context, log string, entries []Entry) ([]int64, error)
	// Blob returns the data stored under ref (ErrNotFound if none).
	Blob(ctx context.Context, ref Ref) ([]byte, error)
	// Scan calls fn for every record matching q, ordered by time, then
	// sequence, then id.
	Scan(ctx context.Context, q Query, fn func(*Stored) error) error
	// Latest returns the newest record of kind for agent (by time, then
	// sequence), or an error wrapping ErrNotFound. A restarted verifier
	// resumes each agent from it.
	Latest(ctx context.Context, kind Kind, agent string) (*Stored, error)
	// Pending returns up to limit outbox rows of log due at now.
	Pending(ctx context.Context, log string, now time.Time, limit int) ([]*Stored, error)
	// Ack stores the proof and removes the outbox row in one transaction.
	Ack(ctx context.Context, id int64, log string, proof []byte) error
	// Retry records a failed attempt and when to try next.
	Retry(ctx context.Context, id int64, log string, next time.Time, msg string) error
	// Status summarizes the store and the outbox backlog.
	Status(ctx context.Context) (*Status, error)
	Close() error
}

// Entry is a record to append with the blobs it references.
type Entry struct {
	Record *Record
	Blobs  []Blob
}

// Stored is a record as read back, with its database id and proofs by log.
type Stored struct {
	ID     int64
	Record Record
	Proofs map[string][]byte
	// Attempts and LastError describe the outbox row (Pending only).
	Attempts  int
	LastError string
}

// Query selects records. Zero fields match everything; To is exclusive.
type Query struct {
	Kind    Kind
	AgentID string
	From    time.Time
	To      time.Time
}

// Status is the state of a store.
type Status struct {
	Registrations int64 `json:"registrations"`
	Rounds        int64 `json:"rounds"`
	Blobs         int64 `json:"blobs"`
	Proved        int64 `json:"proved"`
	// Backlog counts outbox rows per log.
	Backlog       map[string]int64 `json:"backlog"`
	OldestPending *time.Time       `json:"oldest_pending,omitempty"`
	MaxAttempts   int64            `json:"max_attempts"`
	LastError     string           `json:"last_error,omitempty"`
	SchemaVersion int              `json:"schema_version"`
}

// ErrNotFound is returned for a missing blob.
var ErrNotFound = errors.New("not found")

//go:embed migrations
var migrationFS embed.FS

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

type sqlStore struct {
	db      *sql.DB
	dialect dialect
}

// OpenOptions configures OpenStore.
type OpenOptions struct {
	// Migrate applies pending schema migrations before use. Without it
	// OpenStore refuses a store whose schema is not current.
	Migrate bool
}

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenStore opens a PostgreSQL store for postgres:// URLs and a SQLite
// file store for anything else (a path, or sqlite://path).
func OpenStore(ctx context.Context, dsn string, opts OpenOptions) (Store, error) {
	s, err := openSQL(ctx, dsn)
	if err != nil {
		return nil, err
	}
	have, want, err := s.versions(ctx)
	if err == nil && have != want {
		if opts.Migrate {
			err = s.migrate(ctx)
		} else {
			err = fmt.Errorf("archive store: schema version %d, this zest needs %d: migrate it first", have, want)
		}
	}
	if err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func openSQL(ctx context.Context, dsn string) (*sqlStore, error) {
	s := &sqlStore{}
	var err error
	if IsPostgres(dsn) {
		s.dialect = dialectPostgres
		s.db, err = sql.Open("pgx", dsn)
	} else {
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, errors.New("archive store: empty path")
		}
		// WAL + synchronous=FULL: a committed round survives kill -9 and
		// power loss; busy_timeout lets a second process (status while
		// the verifier writes) wait instead of failing.
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		s.dialect = dialectSQLite
		s.db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err == nil {
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("archive store: %w", err)
	}
	return s, nil
}

// Migrate applies pending migrations to the store at dsn and returns the
// schema versions before and after.
func Migrate(ctx context.Context, dsn string) (from, to int, err error) {
	s, err := openSQL(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer s.db.Close()
	if from, _, err = s.versions(ctx); err != nil {
		return 0, 0, err
	}
	if err := s.migrate(ctx); err != nil {
		return from, from, err
	}
	to, _, err = s.versions(ctx)
	return from, to, err
}

type migration struct {
	version int
	name    string
	sql     string
}

func (s *sqlStore) migrations() ([]migration, error) {
	dir := "migrations/sqlite"
	if s.dialect == dialectPostgres {
		dir = "migrations/postgres"
	}
	ents, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

func (s *sqlStore) versions(ctx context.Context) (have, want int, err error) {
	ms, err := s.migrations()
	if err != nil {
		return 0, 0, err
	}
	want = ms[len(ms)-1].version
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)`); err != nil {
		return 0, 0, fmt.Errorf("archive store: %w", err)
	}
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, 0, fmt.Errorf("archive store: %w", err)
	}
	return int(v.Int64), want, nil
}

func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.dialect == dialectPostgres {
		// Two zest processes migrating at once take turns.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7415)`); err != nil {
			return err
		}
	}
	var v sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return err
	}
	for _, m := range ms {
		if m.version <= int(v.Int64) {
			continue
		}
		for _, stmt := range splitSQL(m.sql) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return tx.Commit()
}

// splitSQL splits a migration file at semicolons ending a line; comments
// are dropped.
func splitSQL(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *sqlStore) Close() error { return s.db.Close() }

// appendChunk is how many rows one multi-row INSERT carries: a round trip
// per chunk instead of per row is what makes batched ingest fast on
// PostgreSQL (8 parameters a row stays far below both databases' limits).
const appendChunk = 200

func (s *sqlStore) Append(ctx context.Context, log string, entries []Entry) ([]int64, error) {
	// Check everything before touching the database.
	var blobs []Blob
	seen := map[Ref]bool{}
	for _, e := range entries {
		r := e.Record
		for _, b := range e.Blobs {
			if seen[b.Ref] {
				continue
			}
			if RefOf(b.Data) != b.Ref {
				return nil, fmt.Errorf("%s %s/%d: blob %s: data does not hash to its reference", r.Kind, r.AgentID, r.Seq, b.Ref)
			}
			seen[b.Ref] = true
			blobs = append(blobs, b)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for i := 0; i < len(blobs); i += appendChunk {
		chunk := blobs[i:min(i+appendChunk, len(blobs))]
		args := make([]any, 0, 2*len(chunk))
		for _, b := range chunk {
			args = append(args, string(b.Ref), b.Data)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO blobs (ref, data) VALUES `+rows(len(chunk), 2)+` ON CONFLICT (ref) DO NOTHING`), args...); err != nil {
			return nil, fmt.Errorf("blobs: %w", err)
		}
	}
	ids := make([]int64, len(entries))
	for i := 0; i < len(entries); i += appendChunk {
		chunk := entries[i:min(i+appendChunk, len(entries))]
		args := make([]any, 0, 8*len(chunk))
		want := map[[32]byte][]int{}
		for j, e := range chunk {
			r := e.Record
			d := r.Digest()
			want[d] = append(want[d], i+j)
			args = append(args, string(r.Kind), r.AgentID, int64(r.Seq), r.Time.UnixNano(), d[:], r.Body, r.KeyID, r.Sig)
		}
		// Records already stored (same digest) are not inserted again;
		// ids come back by digest either way.
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO records (kind, agent_id, seq, time_ns, digest, body, key_id, sig) VALUES `+
			rows(len(chunk), 8)+` ON CONFLICT (digest) DO NOTHING`), args...); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		dargs := make([]any, 0, len(want))
		for d := range want {
			dargs = append(dargs, append([]byte(nil), d[:]...))
		}
		res, err := tx.QueryContext(ctx, s.q(`SELECT id, digest FROM records WHERE digest IN (`+placeholders(len(dargs))+`)`), dargs...)
		if err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		for res.Next() {
			var id int64
			var d []byte
			if err := res.Scan(&id, &d); err != nil {
				res.Close()
				return nil, err
			}
			for _, k := range want[[32]byte(d)] {
				ids[k] = id
			}
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, err
		}
		if log != "" {
			oargs := make([]any, 0, 2*len(chunk))
			for j := range chunk {
				oargs = append(oargs, ids[i+j], log)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO outbox (record_id, log) VALUES `+rows(len(chunk), 2)+` ON CONFLICT (record_id, log) DO NOTHING`), oargs...); err != nil {
				return nil, fmt.Errorf("outbox: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return ids, nil
}

// rows returns "(?, ?), (?, ?)" for n rows of k columns.
func rows(n, k int) string {
	row := "(" + placeholders(k) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

func placeholders(k int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", k), ", ")
}

func (s *sqlStore) Blob(ctx context.Context, ref Ref) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT data FROM blobs WHERE ref = ?`), string(ref)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", ref, ErrNotFound)
	}
	return b, err
}

// scanPage is how many records Scan reads before calling fn, so fn may use
// the store (a SQLite store has one connection) and memory stays bounded.
const scanPage = 1000

func (s *sqlStore) Scan(ctx context.Context, q Query, fn func(*Stored) error) error {
	var where []string
	var args []any
	if q.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, string(q.Kind))
	}
	if q.AgentID != "" {
		where = append(where, "agent_id = ?")
		args = append(args, q.AgentID)
	}
	if !q.From.IsZero() {
		where = append(where, "time_ns >= ?")
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		where = append(where, "time_ns < ?")
		args = append(args, q.To.UnixNano())
	}
	where = append(where, "(time_ns, seq, id) > (?, ?, ?)")
	query := s.q(`SELECT r.id, r.kind, r.agent_id, r.seq, r.time_ns, r.body, r.key_id, r.sig, p.log, p.proof
		FROM (SELECT * FROM records WHERE ` + strings.Join(where, " AND ") + `
		      ORDER BY time_ns, seq, id LIMIT ` + strconv.Itoa(scanPage) + `) r
		LEFT JOIN proofs p ON p.record_id = r.id
		ORDER BY r.time_ns, r.seq, r.id, p.log`)
	cursor := []any{int64(-1 << 63), int64(-1 << 63), int64(-1 << 63)}
	for {
		page, err := s.scanPage(ctx, query, append(append([]any{}, args...), cursor...))
		if err != nil {
			return err
		}
		for _, st := range page {
			if err := fn(st); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		last := page[len(page)-1]
		cursor = []any{last.Record.Time.UnixNano(), int64(last.Record.Seq), last.ID}
	}
}

func (s *sqlStore) scanPage(ctx context.Context, query string, args []any) ([]*Stored, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []*Stored
	for rows.Next() {
		var st Stored
		var kind string
		var seq, tns int64
		var log sql.NullString
		var proof []byte
		if err := rows.Scan(&st.ID, &kind, &st.Record.AgentID, &seq, &tns, &st.Record.Body, &st.Record.KeyID, &st.Record.Sig, &log, &proof); err != nil {
			return nil, err
		}
		if n := len(page); n > 0 && page[n-1].ID == st.ID {
			if log.Valid {
				page[n-1].Proofs[log.String] = proof
			}
			continue
		}
		st.Record.Kind, st.Record.Seq, st.Record.Time = Kind(kind), uint64(seq), time.Unix(0, tns).UTC()
		st.Proofs = map[string][]byte{}
		if log.Valid {
			st.Proofs[log.String] = proof
		}
		page = append(page, &st)
	}
	return page, rows.Err()
}

func (s *sqlStore) Latest(ctx context.Context, kind Kind, agent string) (*Stored, error) {
	page, err := s.scanPage(ctx, s.q(`SELECT r.id, r.kind, r.agent_id, r.seq, r.time_ns, r.body, r.key_id, r.sig, p.log, p.proof
		FROM (SELECT * FROM records WHERE kind = ? AND agent_id = ? ORDER BY time_ns DESC, seq DESC, id DESC LIMIT 1) r
		LEFT JOIN proofs p ON p.record_id = r.id ORDER BY p.log`), []any{string(kind), agent})
	if err != nil {
		return nil, err
	}
	if len(page) == 0 {
		return nil, fmt.Errorf("%s of %s: %w", kind, agent, ErrNotFound)
	}
	return page[0], nil
}

func (s *sqlStore) Pending(ctx context.Context, log string, now time.Time, limit int) ([]*Stored, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT r.id, r.kind, r.agent_id, r.seq, r.time_ns, r.body, r.key_id, r.sig, o.attempts, o.last_error
		FROM outbox o JOIN records r ON r.id = o.record_id
		WHERE o.log = ? AND o.next_attempt_ns <= ? ORDER BY o.record_id LIMIT ?`), log, now.UnixNano(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Stored
	for rows.Next() {
		st := &Stored{Proofs: map[string][]byte{}}
		var kind string
		var seq, tns int64
		if err := rows.Scan(&st.ID, &kind, &st.Record.AgentID, &seq, &tns, &st.Record.Body, &st.Record.KeyID, &st.Record.Sig, &st.Attempts, &st.LastError); err != nil {
			return nil, err
		}
		st.Record.Kind, st.Record.Seq, st.Record.Time = Kind(kind), uint64(seq), time.Unix(0, tns).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

func (s *sqlStore) Ack(ctx context.Context, id int64, log string, proof []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO proofs (record_id, log, proof) VALUES (?, ?, ?) ON CONFLICT (record_id, log) DO NOTHING`), id, log, proof); err != nil {
		return fmt.Errorf("record %d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM outbox WHERE record_id = ? AND log = ?`), id, log); err != nil {
		return fmt.Errorf("record %d: %w", id, err)
	}
	return tx.Commit()
}

func (s *sqlStore) Retry(ctx context.Context, id int64, log string, next time.Time, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE outbox SET attempts = attempts + 1, next_attempt_ns = ?, last_error = ? WHERE record_id = ? AND log = ?`),
		next.UnixNano(), msg, id, log)
	return err
}

func (s *sqlStore) Status(ctx context.Context) (*Status, error) {
	st := &Status{Backlog: map[string]int64{}}
	var err error
	st.SchemaVersion, _, err = s.versions(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT kind, COUNT(*) FROM records GROUP BY kind`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			rows.Close()
			return nil, err
		}
		switch Kind(k) {
		case KindRound:
			st.Rounds = n
		case KindRegistration:
			st.Registrations = n
		}
	}
	rows.Close()
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM blobs`).Scan(&st.Blobs); err != nil {
		return nil, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM proofs`).Scan(&st.Proved); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT log, COUNT(*), MAX(attempts) FROM outbox GROUP BY log`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var l string
		var n, a int64
		if err := rows.Scan(&l, &n, &a); err != nil {
			rows.Close()
			return nil, err
		}
		st.Backlog[l] = n
		st.MaxAttempts = max(st.MaxAttempts, a)
	}
	rows.Close()
	var oldest sql.NullInt64
	var lastErr sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(r.time_ns) FROM outbox o JOIN records r ON r.id = o.record_id`).Scan(&oldest); err != nil {
		return nil, err
	}
	if oldest.Valid {
		t := time.Unix(0, oldest.Int64).UTC()
		st.OldestPending = &t
	}
	err = s.db.QueryRowContext(ctx, `SELECT last_error FROM outbox WHERE last_error <> '' ORDER BY attempts DESC, record_id LIMIT 1`).Scan(&lastErr)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	st.LastError = lastErr.String
	return st, nil
}

// Blobs implements BlobBatcher: one query per 500 references.
func (s *sqlStore) Blobs(ctx context.Context, refs []Ref) (map[Ref][]byte, error) {
	out := make(map[Ref][]byte, len(refs))
	for i := 0; i < len(refs); i += 500 {
		chunk := refs[i:min(i+500, len(refs))]
		args := make([]any, len(chunk))
		for j, r := range chunk {
			args[j] = string(r)
		}
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT ref, data FROM blobs WHERE ref IN (`+placeholders(len(chunk))+`)`), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var ref string
			var data []byte
			if err := rows.Scan(&ref, &data); err != nil {
				rows.Close()
				return nil, err
			}
			out[Ref(ref)] = data
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
