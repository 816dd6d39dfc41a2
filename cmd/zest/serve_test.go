package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/archive"
	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
)

// TestServe runs zest serve against the TPM-backed test agent: the agent is
// attested on an interval, /status and /metrics report it, and the
// evidence API answers Keylime's quote vector.
func TestServe(t *testing.T) {
	testStart := time.Now().UTC().Format(time.RFC3339Nano)
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	dir := writeOperatorFiles(t, a).dir // client.crt, client.key, agent.crt, ak.b64, policy.json
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	measure(t, a, "/usr/bin/bash", "bash")
	// A second agent on its own TPM (swtpm) pushes its evidence; zest takes
	// its AK from a Keylime registrar (mTLS), checking the EK chain.
	pa := agent.StartTest(t, agent.Options{TPM: agent.NewTestSwtpm(t), BootAggregate: true})
	reg := agent.StartTestRegistrar(t, pa)
	write("registrar-ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.CA.Raw}))
	write("ek-ca.crt", pa.EKCAPEM)
	write("zest.yaml", []byte(`
listen: 127.0.0.1:0
insecure_loopback: true
interval: 50ms
archive: {dir: archive}
client: {cert: client.crt, key: client.key}
defaults: {runtime_policy: policy.json}
agents:
  - id: `+a.UUID()+`
    url: `+a.URL+`
    ak: ak.b64
    agent_cert: agent.crt
  - id: `+pa.UUID()+`
    push: true
    registrar: `+reg.URL+`
    registrar_ca: registrar-ca.crt
    ek_ca: ek-ca.crt
`))
	cfg, err := loadServeConfig(filepath.Join(dir, "zest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	app := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx, cfg, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	base := "http://" + addr

	var status struct {
		Agents []struct {
			Agent   string `json:"agent"`
			Verdict string `json:"verdict"`
			Rounds  int    `json:"rounds"`
		} `json:"agents"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/status")
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
		if len(status.Agents) == 1 && status.Agents[0].Rounds >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rounds: %+v (stderr %s)", status, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status.Agents[0].Verdict != "trusted" || status.Agents[0].Agent != a.UUID() {
		t.Fatalf("status: %+v", status)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `zest_agent_trusted{agent="`+a.UUID()+`"} 1`) || !strings.Contains(string(metrics), `zest_rounds_total{verdict="trusted"}`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
	body, err := os.ReadFile("../../fixtures/keylime/evidence-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(base+"/v2.3/verify/evidence", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Code    int `json:"code"`
		Results struct {
			Valid bool `json:"valid"`
		} `json:"results"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if env.Code != 200 || !env.Results.Valid {
		t.Fatalf("evidence: %+v", env)
	}
	pc := &agent.PushClient{Agent: pa.Agent, Verifier: base}
	res, err := pc.Attest(ctx)
	if err != nil || res.Evaluation != "pass" {
		t.Fatalf("push agent: %+v %v", res, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every round, pulled and pushed, is in the archive and proven in its
	// transparency log (the outbox drains on shutdown).
	var out, errb bytes.Buffer
	if code := Main([]string{"archive", "status", "--json", "--dir", filepath.Join(dir, "archive")}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("archive status: %d %s", code, errb.String())
	}
	var st struct {
		Registrations, Rounds, Proved int64
		Backlog                       map[string]int64
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Registrations != 2 || st.Rounds < 4 || st.Proved != st.Rounds+st.Registrations || st.Backlog["local"] != 0 {
		t.Fatalf("archive after serve: %s", out.String())
	}
	out.Reset()
	if code := Main([]string{"archive", "replay", "--dir", filepath.Join(dir, "archive"), "--agent", pa.UUID(), "--from", testStart, "--gap-factor", "1000", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("replay of the push agent: %d %s %s", code, out.String(), errb.String())
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]string{
		"unknown key":  "listen: 127.0.0.1:0\nbogus: 1\n",
		"not yaml":     "listen: [\n",
		"public plain": "listen: 0.0.0.0:0\ninsecure_loopback: true\n",
		"no tls":       "listen: 127.0.0.1:0\n",
		"agent no id":  "listen: 127.0.0.1:0\ninsecure_loopback: true\nagents: [{url: https://127.0.0.1:1}]\n",
		"bad interval": "listen: 127.0.0.1:0\ninsecure_loopback: true\ninterval: soon\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := Main([]string{"serve", "--config", p}, strings.NewReader(""), &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%s: exit %d stderr %q", name, code, errb.String())
		}
	}
}

// TestServePushRestart: a push agent attests over mTLS to zest serve with
// an archive; zest serve is stopped and started again on the same archive;
// the agent's next attestation continues at its IMA offset (no full
// re-attestation) and the archive holds every round once, in sequence.
func TestServePushRestart(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Server certificate for 127.0.0.1 from a test CA; clients must chain
	// to the test agent's client CA.
	ca, caKey, err := agent.NewTestCA("zest test server CA")
	if err != nil {
		t.Fatal(err)
	}
	skey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scert, err := agent.IssueTestCert(ca, caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "zest"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &skey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	skeyDER, _ := x509.MarshalPKCS8PrivateKey(skey)
	write("server.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: scert.Raw}))
	write("server.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: skeyDER}))
	write("clients.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ClientCA.Raw}))
	write("ak.b64", []byte(base64.StdEncoding.EncodeToString(a.AKPublic())))
	d := sha256.Sum256([]byte("bash"))
	p := policygen.NewRuntimePolicy()
	p.Digests["/usr/bin/bash"] = []string{hex.EncodeToString(d[:])}
	pj, _ := p.Marshal(policygen.FormatPretty)
	write("policy.json", pj)
	write("zest.yaml", []byte(`
listen: 127.0.0.1:0
tls: {cert: server.crt, key: server.key, client_ca: clients.crt}
interval: 10ms
archive: {dir: archive}
defaults: {runtime_policy: policy.json}
agents:
  - {id: `+a.UUID()+`, push: true, ak: ak.b64}
`))
	line := func() string {
		l, err := agent.IMALine(agent.TemplateIMANG, "sha256", d[:], "/usr/bin/bash", nil)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{a.ClientCert}, RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	run := func(rounds int) {
		t.Helper()
		cfg, err := loadServeConfig(filepath.Join(dir, "zest.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		app := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() { done <- app.serve(ctx, cfg, ready) }()
		var addr string
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("serve: %v", err)
		}
		// Without a client certificate the server refuses the connection.
		if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}).Get("https://" + addr + "/version"); err == nil {
			t.Fatal("serve accepted a client without a certificate")
		}
		pc := &agent.PushClient{Agent: a.Agent, Verifier: "https://" + addr, HTTP: httpc}
		for i := 0; i < rounds; i++ {
			if err := a.AppendIMA(line()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(15 * time.Millisecond) // the interval, and the TPM clock must advance
			res, err := pc.Attest(context.Background())
			if err != nil || res.Evaluation != "pass" {
				t.Fatalf("push round %d: %+v %v", i, res, err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(2)
	run(2) // a restarted zest serve on the same archive

	st, err := archive.OpenStore(context.Background(), filepath.Join(dir, "archive", "archive.db"), archive.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var seqs []uint64
	var starts []uint64
	err = st.Scan(context.Background(), archive.Query{Kind: archive.KindRound, AgentID: a.UUID()}, func(s *archive.Stored) error {
		seqs = append(seqs, s.Record.Seq)
		var body struct {
			Evidence struct {
				IMAStart uint64 `json:"ima_start"`
			} `json:"evidence"`
		}
		if err := json.Unmarshal(s.Record.Body, &body); err != nil {
			return err
		}
		starts = append(starts, body.Evidence.IMAStart)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Four rounds, sequence 1..4, and after the restart the list continues
	// where it stopped (entries 0-1, 2, 3, 4: never from 0 again).
	if len(seqs) != 4 || seqs[0] != 1 || seqs[3] != 4 || starts[2] == 0 || starts[3] <= starts[2] {
		t.Fatalf("archived push rounds: seqs %v, IMA starts %v", seqs, starts)
	}
}
