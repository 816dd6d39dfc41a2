package archive

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/keylime"
	"github.com/zest-attest/zest/verifier/pull"
	"github.com/zest-attest/zest/verifier/quote"
)

// pgBase is the PostgreSQL every test uses (trust auth on loopback).
func pgBase() string {
	if u := os.Getenv("ZEST_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// needService skips when a service is unreachable, except under CI=true,
// where a missing service is a failure.
func needService(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unreachable under CI=true: %v", addr, err)
	}
	t.Skipf("%s unreachable: %v", addr, err)
}

// pgDSN creates a fresh schema for this test and returns a DSN using it.
func pgDSN(t testing.TB) string {
	t.Helper()
	needService(t, "127.0.0.1:5432")
	db, err := sql.Open("pgx", pgBase())
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "zt_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	})
	sep := "?"
	if strings.Contains(pgBase(), "?") {
		sep = "&"
	}
	return pgBase() + sep + "search_path=" + schema
}

func sqliteDSN(t testing.TB) string { return filepath.Join(t.TempDir(), "archive.db") }

func testSigner(t testing.TB, alg string) *Signer {
	t.Helper()
	p, err := GenerateKeyPEM(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyringOf(t testing.TB, s *Signer) Keyring {
	k := Keyring{}
	if _, err := k.Add(s.PublicPEM); err != nil {
		t.Fatal(err)
	}
	return k
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testAK is a stand-in attestation key blob (what the registrar stored).
var testAK = []byte("-----BEGIN PUBLIC KEY-----\ntest ak\n-----END PUBLIC KEY-----\n")

// registration builds a signed registration entry.
func registration(t testing.TB, s *Signer, agent string, at time.Time) Entry {
	t.Helper()
	ak := NewBlob(testAK)
	rec, err := SignRegistration(s, &Registration{AgentID: agent, Time: at, AK: ak.Ref, Verifier: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Record: rec, Blobs: []Blob{ak}}
}

// round builds a signed round entry whose IMA lines continue from start.
func round(t testing.TB, s *Signer, agent string, seq uint64, at time.Time, start, n uint64, v failure.Verdict) Entry {
	t.Helper()
	var lines strings.Builder
	for i := start; i < start+n; i++ {
		fmt.Fprintf(&lines, "10 %064x ima-ng sha256:%064x /usr/bin/f%d\n", i, i, i)
	}
	ima := NewBlob([]byte(lines.String()))
	pol := NewBlob([]byte(`{"meta":{"version":1},"digests":{}}`))
	ak := NewBlob(testAK)
	r := &Round{
		AgentID: agent, Seq: seq, Time: at, IntervalMS: 2000,
		Evidence: Evidence{Quote: fmt.Sprintf("rQUOTE%d", seq), Nonce: fmt.Sprintf("nonce%d", seq), HashAlg: "sha256",
			AK: ak.Ref, IMAStart: start, IMACount: n, IMALines: ima.Ref},
		RuntimePolicy: pol.Ref, Verdict: v, Verifier: "v1",
	}
	if v == failure.VerdictRejected {
		r.Failures = failure.List{failure.Rejectf("ima.validation.ima-ng.not_in_allowlist", map[string]any{"path": "/usr/bin/x"}, "file not in allowlist")}
	}
	rec, err := SignRound(s, r)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Record: rec, Blobs: []Blob{ima, pol, ak}}
}

func openTestStore(t testing.TB, dsn string) Store {
	t.Helper()
	st, err := OpenStore(context.Background(), dsn, OpenOptions{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func sum256(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// pullTarget is a pull target for the test agent a, held to a runtime
// policy allowing files (path → content); it returns the policy's JSON too.
func pullTarget(t testing.TB, a *agent.Running, files map[string]string) (*pull.Target, []byte) {
	t.Helper()
	p := policygen.NewRuntimePolicy()
	for path, content := range files {
		p.Digests[path] = []string{hex.EncodeToString(sum256(content))}
	}
	policyJSON, err := p.Marshal(policygen.FormatPretty)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ima.Compile(p, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := keylime.AgentTLSConfig(a.ClientCert, a.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	client, err := keylime.NewAgentClient(a.URL, tlsConf, keylime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := quote.ParseAK(a.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	return &pull.Target{ID: a.UUID(), Client: client, AK: ak, Policies: verifier.Policies{Runtime: rt}}, policyJSON
}
