package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
)

// TestVerifyAgentCLI runs zest verify against the TPM-backed test agent
// over mTLS, as an operator would: files for the client certificate, the
// pinned agent certificate, the AK and the policy.
func TestVerifyAgentCLI(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	f := writeOperatorFiles(t, a)
	cert, key, agentCert, ak, policy := f.cert, f.key, f.agentCert, f.ak, f.policy
	measure(t, a, "/usr/bin/bash", "bash")
	base := []string{"verify", "--agent", a.URL, "--ak", ak, "--agent-cert", agentCert, "--cert", cert, "--key", key, "--runtime-policy", policy}
	run := func(extra ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(append(append([]string{}, base...), extra...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run(); code != 0 || strings.TrimSpace(out) != strings.TrimPrefix(a.URL, "https://")+": trusted" {
		t.Fatalf("trusted round: exit %d out %q err %q", code, out, errs)
	}

	// Watch two rounds; between them a file outside the policy runs.
	measure(t, a, "/usr/bin/evil", "evil")
	code, out, errs := run("--watch", "--count", "2", "--interval", "10ms", "--json")
	if code != 1 {
		t.Fatalf("watch: exit %d out %q err %q", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("watch printed %d lines: %q", len(lines), out)
	}
	var first struct {
		Verdict  string `json:"verdict"`
		IMAEntry uint64 `json:"ima_entry"`
		Failures []struct {
			Type string `json:"type"`
		} `json:"failures"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Verdict != "rejected" || len(first.Failures) == 0 || first.Failures[0].Type != "ima.validation.ima-ng.not_in_allowlist" {
		t.Fatalf("first watched round: %s", lines[0])
	}

	// A pinned certificate that is not the agent's: error, exit 2.
	code, _, errs = run("--agent-cert", cert)
	if code != 2 {
		t.Fatalf("wrong pin: exit %d (%s)", code, errs)
	}
	// Missing pieces are usage errors.
	for _, args := range [][]string{
		{"verify", "--agent", a.URL, "--runtime-policy", policy},
		{"verify", "--agent", a.URL, "--cert", cert, "--key", key, "--agent-cert", agentCert, "--runtime-policy", policy},
		{"verify", "--agent", a.URL, "--cert", cert, "--key", key, "--ak", ak, "--agent-cert", agentCert},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, strings.NewReader(""), &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("zest %v: exit %d stderr %q", args, code, errb.String())
		}
	}
}

// TestVerifyArchiveReplayAudit is the auditor's path: zest verify --watch
// records every round in an archive directory; zest archive replay
// re-verifies the window (continuous while trusted, first failure named);
// an exported bundle audits offline.
func TestVerifyArchiveReplayAudit(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	f := writeOperatorFiles(t, a)
	dir, cert, key, agentCert, ak, policy := f.dir, f.cert, f.key, f.agentCert, f.ak, f.policy
	measure(t, a, "/usr/bin/bash", "bash")
	arch := filepath.Join(dir, "archive")
	main := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	from := time.Now().UTC().Format(time.RFC3339Nano)
	verify := []string{"verify", "-q", "--agent", a.URL, "--agent-id", a.UUID(), "--ak", ak, "--agent-cert", agentCert, "--cert", cert, "--key", key,
		"--runtime-policy", policy, "--archive", arch, "--watch", "--count", "3", "--interval", "20ms"}
	if code, out, errs := main(verify...); code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errs)
	}
	mid := time.Now().UTC().Format(time.RFC3339Nano)
	measure(t, a, "/usr/bin/evil", "evil")
	if code, out, errs := main(verify...); code != 1 {
		t.Fatalf("verify after evil: exit %d\n%s\n%s", code, out, errs)
	}
	// The verifier has drained its outbox on exit: every record is proven.
	// Rounds are 20 ms apart; allow the start-up before the first one.
	replay := []string{"archive", "replay", "--dir", arch, "--agent", a.UUID(), "--from", from, "--gap-factor", "100"}
	code, out, errs := main(append(replay, "--to", mid)...)
	if code != 0 || !strings.Contains(out, "continuous") {
		t.Fatalf("replay of the trusted window: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = main(replay...)
	if code != 1 || !strings.Contains(out, "ima.validation.ima-ng.not_in_allowlist") {
		t.Fatalf("replay of the whole window: exit %d\n%s\n%s", code, out, errs)
	}
	bundle := filepath.Join(dir, "bundle.tar.zst")
	if code, out, errs := main("archive", "export", "--dir", arch, "--agent", a.UUID(), "--from", from, "--to", mid, "--gap-factor", "100", "-o", bundle); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = main("archive", "audit", "--gap-factor", "100", bundle)
	if code != 0 || !strings.Contains(out, "continuous") {
		t.Fatalf("audit: exit %d\n%s\n%s", code, out, errs)
	}
}

func TestVerifyAcceptedAlgorithms(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	f := writeOperatorFiles(t, a)
	cert, key, agentCert, ak := f.cert, f.key, f.agentCert, f.ak
	base := []string{"verify", "--agent", a.URL, "--ak", ak, "--agent-cert", agentCert, "--cert", cert, "--key", key, "--tpm-policy", `{"mask":"0x1"}`}
	for _, tt := range []struct {
		extra []string
		code  int
		want  string
	}{
		{nil, 0, "trusted"},
		{[]string{"--accept-hash-algs", "sha384"}, 1, "qoute_validation.invalid_hash_alg"},
		{[]string{"--accept-sign-algs", "ecdsa"}, 1, "qoute_validation.invalid_sign_alg"},
		{[]string{"--accept-enc-algs", "ecc"}, 1, "qoute_validation.invalid_enc_alg"},
		{[]string{"--accept-hash-algs", "md5"}, 2, ""},
	} {
		var out, errb bytes.Buffer
		code := Main(append(append([]string{}, base...), tt.extra...), strings.NewReader(""), &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.want) {
			t.Errorf("%v: exit %d, out %q err %q; want %d %q", tt.extra, code, out.String(), errb.String(), tt.code, tt.want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// operatorFiles are the files an operator hands zest verify for one test
// agent: the client certificate and key, the pinned agent certificate, the
// AK (base64 TPM2B_PUBLIC, as a registrar's aik_tpm) and a runtime policy
// allowing /usr/bin/bash with content "bash".
type operatorFiles struct {
	dir                              string
	cert, key, agentCert, ak, policy string
}

func writeOperatorFiles(t *testing.T, a *agent.Running) operatorFiles {
	t.Helper()
	f := operatorFiles{dir: t.TempDir()}
	write := func(name string, b []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.ClientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f.cert = write("client.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ClientCert.Certificate[0]}))
	f.key = write("client.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	f.agentCert = write("agent.crt", a.CertificatePEM())
	f.ak = write("ak.b64", []byte(base64.StdEncoding.EncodeToString(a.AKPublic())+"\n"))
	p := policygen.NewRuntimePolicy()
	p.Digests["/usr/bin/bash"] = []string{hex.EncodeToString(digestOf("bash"))}
	pj, err := p.Marshal(policygen.FormatPretty)
	if err != nil {
		t.Fatal(err)
	}
	f.policy = write("policy.json", pj)
	return f
}

func digestOf(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// measure appends an ima-ng record of path with content's digest.
func measure(t *testing.T, a *agent.Running, path, content string) {
	t.Helper()
	l, err := agent.IMALine(agent.TemplateIMANG, "sha256", digestOf(content), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AppendIMA(l); err != nil {
		t.Fatal(err)
	}
}
