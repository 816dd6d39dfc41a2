package keylime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier/keylime"
)

func newClient(t *testing.T, r *agent.Running, opts keylime.Options) *keylime.AgentClient {
	t.Helper()
	tc, err := keylime.AgentTLSConfig(r.ClientCert, r.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	c, err := keylime.NewAgentClient(r.URL, tc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func imaLine(t *testing.T, path string) string {
	t.Helper()
	l, err := agent.IMALine(agent.TemplateIMANG, "sha256", make([]byte, 32), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// attested decodes a quote string's TPMS_ATTEST (what the verifier would
// check) to see what the agent quoted.
func attested(t *testing.T, quote string) (*tpm2.TPMSAttest, []int) {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(quote, "r"), ":")
	if len(parts) != 3 {
		t.Fatalf("quote has %d parts", len(parts))
	}
	b, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](b)
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.Attested.Quote()
	if err != nil {
		t.Fatal(err)
	}
	var pcrs []int
	for i, s := range info.PCRSelect.PCRSelections[0].PCRSelect {
		for bit := 0; bit < 8; bit++ {
			if s&(1<<bit) != 0 {
				pcrs = append(pcrs, i*8+bit)
			}
		}
	}
	return a, pcrs
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name   string
		agent  []string
		client []string
		want   string
		err    error
	}{
		{"highest common", nil, nil, "2.6", nil},
		{"old agent", []string{"2.1", "2.2"}, nil, "2.2", nil},
		{"old client", nil, []string{"2.1", "2.3"}, "2.3", nil},
		{"disjoint", []string{"2.4"}, []string{"2.1"}, "", keylime.ErrNoCommonVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := agent.StartTest(t, agent.Options{APIVersions: tc.agent})
			c := newClient(t, r, keylime.Options{Versions: tc.client})
			got, err := c.Negotiate(context.Background())
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Negotiate = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestRenegotiate: a pinned version the agent no longer serves is
// renegotiated once, transparently.
func TestRenegotiate(t *testing.T) {
	r := agent.StartTest(t, agent.Options{APIVersions: []string{"2.1", "2.2"}})
	c := newClient(t, r, keylime.Options{})
	if err := c.SetAPIVersion("2.6"); err != nil {
		t.Fatal(err)
	}
	info, err := c.AgentInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.APIVersion() != "2.2" || info.AgentUUID != r.UUID() || info.AKHandle == 0 || info.TPMSignAlg != "rsassa" {
		t.Errorf("version %s info %+v", c.APIVersion(), info)
	}
	// 2.1 has no /agent/info: a clear error naming URL and status.
	c1 := newClient(t, r, keylime.Options{Versions: []string{"2.1"}})
	_, err = c1.AgentInfo(context.Background())
	var he *keylime.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 400 || !strings.Contains(err.Error(), r.URL+"/v2.1/agent/info") ||
		!strings.Contains(err.Error(), "Not Implemented") {
		t.Errorf("err = %v", err)
	}
}

func TestIntegrityQuote(t *testing.T) {
	lines := []string{imaLine(t, "/a"), imaLine(t, "/b"), imaLine(t, "/c")}
	raw, err := os.ReadFile("../../fixtures/eventlog/ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
	if err != nil {
		t.Fatal(err)
	}
	r := agent.StartTest(t, agent.Options{IMA: lines, EventLog: raw})
	c := newClient(t, r, keylime.Options{})
	tests := []struct {
		req       keylime.IntegrityRequest
		pcrs      string
		pubkey    bool
		mb        bool
		entry     uint64
		imaLines  int
		wantError string
	}{
		{keylime.IntegrityRequest{Nonce: "n1", Mask: 1 << 10}, "[10 16]", true, false, 0, 3, ""},
		{keylime.IntegrityRequest{Nonce: "n2", Mask: 1<<0 | 1<<10, Partial: true, IMAEntry: 1}, "[0 10 16]", false, true, 1, 2, ""},
		{keylime.IntegrityRequest{Nonce: "n3", Mask: 0x408400, Partial: true, IMAEntry: 3}, "[10 15 16 22]", false, false, 3, 0, ""},
		{keylime.IntegrityRequest{Nonce: "n4", Partial: true, IMAEntry: 7}, "[16]", false, false, 0, 3, ""},
		{keylime.IntegrityRequest{Nonce: "bad nonce"}, "", false, false, 0, 0, "letters and digits"},
		{keylime.IntegrityRequest{Nonce: strings.Repeat("a", 65)}, "", false, false, 0, 0, "1-64 characters"},
		{keylime.IntegrityRequest{Nonce: "n", Mask: 1 << 24}, "", false, false, 0, 0, "above 23"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s-%x-%d", tc.req.Nonce[:min(len(tc.req.Nonce), 4)], tc.req.Mask, tc.req.IMAEntry), func(t *testing.T) {
			q, err := c.IntegrityQuote(context.Background(), tc.req)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, pcrs := attested(t, q.Quote)
			if string(a.ExtraData.Buffer) != tc.req.Nonce || fmt.Sprint(pcrs) != tc.pcrs {
				t.Errorf("quote over %v with nonce %q", pcrs, a.ExtraData.Buffer)
			}
			if (q.PubKey != nil) != tc.pubkey || (q.MBMeasurementList != nil) != tc.mb {
				t.Errorf("pubkey %v mb %v", q.PubKey != nil, q.MBMeasurementList != nil)
			}
			if tc.pubkey && *q.PubKey != r.PayloadPublicPEM() {
				t.Error("pubkey is not the payload key")
			}
			if tc.mb {
				mb, _ := base64.StdEncoding.DecodeString(*q.MBMeasurementList)
				if string(mb) != string(raw) {
					t.Error("mb_measurement_list is not the event log")
				}
			}
			if q.IMAMeasurementListEntry == nil || *q.IMAMeasurementListEntry != tc.entry ||
				q.IMAMeasurementList == nil || strings.Count(*q.IMAMeasurementList, "\n") != tc.imaLines {
				t.Errorf("IMA entry %v, %d lines", q.IMAMeasurementListEntry, strings.Count(*q.IMAMeasurementList, "\n"))
			}
			if q.HashAlg != "sha256" || q.EncAlg != "rsa2048" || q.SignAlg != "rsassa" || q.APIVersion != "2.6" || len(q.Body) == 0 {
				t.Errorf("fields %s %s %s %s", q.HashAlg, q.EncAlg, q.SignAlg, q.APIVersion)
			}
		})
	}
	id, err := c.IdentityQuote(context.Background(), "idnonce")
	if err != nil {
		t.Fatal(err)
	}
	if _, pcrs := attested(t, id.Quote); fmt.Sprint(pcrs) != "[16]" || id.PubKey == nil {
		t.Errorf("identity quote over %v", pcrs)
	}
}

// TestIncrementalAndReboot follows a verifier's rounds: full list, only
// new lines, then a reboot (counters reset, list restarts at entry 0).
func TestIncrementalAndReboot(t *testing.T) {
	r := agent.StartTest(t, agent.Options{BootAggregate: true})
	c := newClient(t, r, keylime.Options{})
	ctx := context.Background()
	q1, err := c.IntegrityQuote(ctx, keylime.IntegrityRequest{Nonce: "r1", Mask: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	next := *q1.IMAMeasurementListEntry + uint64(strings.Count(*q1.IMAMeasurementList, "\n"))
	if err := r.AppendIMA(imaLine(t, "/usr/bin/new")); err != nil {
		t.Fatal(err)
	}
	q2, err := c.IntegrityQuote(ctx, keylime.IntegrityRequest{Nonce: "r2", Mask: 1 << 10, Partial: true, IMAEntry: next})
	if err != nil {
		t.Fatal(err)
	}
	if *q2.IMAMeasurementListEntry != next || *q2.IMAMeasurementList != imaLine(t, "/usr/bin/new")+"\n" {
		t.Errorf("second round: entry %d list %q", *q2.IMAMeasurementListEntry, *q2.IMAMeasurementList)
	}
	a1, _ := attested(t, q1.Quote)
	if err := r.Reboot(); err != nil {
		t.Fatal(err)
	}
	q3, err := c.IntegrityQuote(ctx, keylime.IntegrityRequest{Nonce: "r3", Mask: 1 << 10, Partial: true, IMAEntry: next + 1})
	if err != nil {
		t.Fatal(err)
	}
	a3, _ := attested(t, q3.Quote)
	if *q3.IMAMeasurementListEntry != 0 || !strings.Contains(*q3.IMAMeasurementList, "boot_aggregate") {
		t.Errorf("after reboot: entry %d list %q", *q3.IMAMeasurementListEntry, *q3.IMAMeasurementList)
	}
	if a3.ClockInfo.ResetCount != a1.ClockInfo.ResetCount+1 {
		t.Errorf("resetCount %d -> %d", a1.ClockInfo.ResetCount, a3.ClockInfo.ResetCount)
	}
}

func TestAgentTLS(t *testing.T) {
	r := agent.StartTest(t, agent.Options{})
	ctx := context.Background()
	otherCA, otherKey, err := agent.NewTestCA("someone else")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stranger, err := agent.IssueTestCert(otherCA, otherKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "stranger"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	strangerCert := tls.Certificate{Certificate: [][]byte{stranger.Raw}, PrivateKey: key}

	t.Run("pin mismatch", func(t *testing.T) {
		tc, _ := keylime.AgentTLSConfig(r.ClientCert, otherCA)
		c, _ := keylime.NewAgentClient(r.URL, tc, keylime.Options{})
		_, err := c.Negotiate(ctx)
		if !errors.Is(err, keylime.ErrUntrustedAgent) || !strings.Contains(err.Error(), r.URL) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(r.Certificate())
		c, _ := keylime.NewAgentClient(r.URL, &tls.Config{RootCAs: roots}, keylime.Options{})
		if _, err := c.Negotiate(ctx); err == nil {
			t.Fatal("agent answered a client without a certificate")
		}
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		tc, _ := keylime.AgentTLSConfig(strangerCert, r.Certificate())
		c, _ := keylime.NewAgentClient(r.URL, tc, keylime.Options{})
		if _, err := c.Negotiate(ctx); err == nil {
			t.Fatal("agent answered a client certificate it does not trust")
		}
	})
	t.Run("no pin", func(t *testing.T) {
		if _, err := keylime.AgentTLSConfig(r.ClientCert); err == nil {
			t.Fatal("config without a pinned certificate")
		}
	})
	t.Run("https without TLS config", func(t *testing.T) {
		if _, err := keylime.NewAgentClient(r.URL, nil, keylime.Options{}); err == nil {
			t.Fatal("https client without TLS")
		}
	})
}

// TestPinChain: the pin may be a CA the agent certificate chains to (an
// agent whose certificate was issued rather than self-signed); host names
// are not checked.
func TestPinChain(t *testing.T) {
	ca, caKey, _ := agent.NewTestCA("agent CA")
	other, _, _ := agent.NewTestCA("other CA")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := agent.IssueTestCert(ca, caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "agent"}, DNSNames: []string{"not-this-host.example"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":200,"status":"Success","results":{"supported_version":"2.2","supported_versions":["2.1","2.2"]}}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.StartTLS()
	defer srv.Close()
	client, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientCert, _ := agent.IssueTestCert(ca, caKey, &x509.Certificate{Subject: pkix.Name{CommonName: "v"}}, &client.PublicKey)
	cc := tls.Certificate{Certificate: [][]byte{clientCert.Raw}, PrivateKey: client}
	for _, tc := range []struct {
		name string
		pin  *x509.Certificate
		ok   bool
	}{{"exact", cert, true}, {"issuer", ca, true}, {"other", other, false}} {
		t.Run(tc.name, func(t *testing.T) {
			conf, _ := keylime.AgentTLSConfig(cc, tc.pin)
			c, _ := keylime.NewAgentClient(srv.URL, conf, keylime.Options{})
			v, err := c.Negotiate(context.Background())
			if (err == nil) != tc.ok || (tc.ok && v != "2.2") {
				t.Fatalf("Negotiate = %q, %v", v, err)
			}
		})
	}
}

func TestRegistrar(t *testing.T) {
	r := agent.StartTest(t, agent.Options{KeyAlg: agent.ECC})
	reg := agent.StartTestRegistrar(t, r)
	ctx := context.Background()
	rc, err := keylime.NewRegistrarClient(reg.URL, reg.ClientTLS, keylime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := rc.GetAgent(ctx, r.UUID())
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.AIKTPM) != string(r.AKPublic()) || string(rec.EKTPM) != string(r.EKPublic()) ||
		!rec.MTLSCert.Equal(r.Certificate()) || rec.Port != r.Port || rec.IP != "127.0.0.1" || rec.RegCount != 1 {
		t.Fatalf("record %+v", rec)
	}
	// The registrar path end to end: pin the registered certificate.
	tc, err := keylime.AgentTLSConfig(r.ClientCert, rec.MTLSCert)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := keylime.NewAgentClient(fmt.Sprintf("https://%s", net.JoinHostPort(rec.IP, fmt.Sprint(rec.Port))), tc, keylime.Options{})
	q, err := c.IntegrityQuote(ctx, keylime.IntegrityRequest{Nonce: "reg", Mask: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if q.EncAlg != "ecc256" || q.SignAlg != "ecdsa" {
		t.Errorf("algs %s %s", q.EncAlg, q.SignAlg)
	}

	_, err = rc.GetAgent(ctx, "no-such-agent")
	var he *keylime.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Errorf("unknown agent: %v", err)
	}

	// EK certificate chain against a CA directory.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manufacturer.pem"), r.EKCAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("not a cert"), 0o600)
	roots, err := keylime.LoadCADir(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := agent.NewTestCA("not the manufacturer")
	otherAgentEK := func() []byte {
		// An EK public area of a different key: the ECC agent's AK area
		// will do, it is a valid TPM2B_PUBLIC with another key.
		return r.AKPublic()
	}
	for _, tc := range []struct {
		name  string
		cert  []byte
		ek    []byte
		roots []*x509.Certificate
		err   string
	}{
		{"trusted", rec.EKCert, rec.EKTPM, roots, ""},
		{"pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rec.EKCert}), rec.EKTPM, roots, ""},
		{"untrusted CA", rec.EKCert, rec.EKTPM, []*x509.Certificate{other}, "unknown authority"},
		{"other EK", rec.EKCert, otherAgentEK(), roots, "does not certify"},
		{"no roots", rec.EKCert, rec.EKTPM, nil, "no trusted roots"},
		{"garbage", []byte("xx"), rec.EKTPM, roots, "EK certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := keylime.VerifyEKCert(tc.cert, tc.ek, keylime.EKCertOptions{Roots: tc.roots})
			if tc.err == "" {
				if err != nil || !v.Cert.Equal(r.EKCert) || len(v.Chain) != 2 {
					t.Fatalf("VerifyEKCert: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		later := keylime.EKCertOptions{Roots: roots, CurrentTime: time.Now().Add(5 * 365 * 24 * time.Hour)}
		if _, err := keylime.VerifyEKCert(rec.EKCert, rec.EKTPM, later); err == nil {
			t.Fatal("expired EK certificate accepted")
		}
		later.AllowExpired = true
		if _, err := keylime.VerifyEKCert(rec.EKCert, rec.EKTPM, later); err != nil {
			t.Fatalf("AllowExpired: %v", err)
		}
	})
	if _, err := keylime.LoadCADir(t.TempDir()); err == nil {
		t.Error("empty CA directory accepted")
	}
}

func TestBoundsAndTimeouts(t *testing.T) {
	r := agent.StartTest(t, agent.Options{IMA: []string{imaLine(t, "/a")}})
	c := newClient(t, r, keylime.Options{MaxResponseBytes: 200})
	if _, err := c.Negotiate(context.Background()); err != nil {
		t.Fatal(err) // /version fits
	}
	_, err := c.IntegrityQuote(context.Background(), keylime.IntegrityRequest{Nonce: "n", Mask: 1 << 10})
	if err == nil || !strings.Contains(err.Error(), "larger than 200 bytes") || !strings.Contains(err.Error(), r.URL) {
		t.Errorf("err = %v", err)
	}

	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	slow, _ := keylime.NewAgentClient(srv.URL, nil, keylime.Options{Timeout: 50 * time.Millisecond})
	if _, err := slow.Negotiate(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow agent: %v", err)
	}

	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") }))
	defer notJSON.Close()
	nj, _ := keylime.NewAgentClient(notJSON.URL, nil, keylime.Options{})
	if _, err := nj.Negotiate(context.Background()); err == nil || !strings.Contains(err.Error(), "not a Keylime JSON envelope") {
		t.Errorf("non-JSON: %v", err)
	}
}

// TestManufacturedEKCert validates the EK certificate a swtpm was
// manufactured with (swtpm_setup, read from NV by the agent) against the
// swtpm_localca chain, as zest will for a golden VM.
func TestManufacturedEKCert(t *testing.T) {
	tpm, caDir := agent.NewTestSwtpmWithEKCert(t)
	r := agent.StartTest(t, agent.Options{TPM: tpm})
	if r.EKCertificate() == nil {
		t.Fatal("agent found no EK certificate in NV")
	}
	roots, err := keylime.LoadCADir(caDir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := keylime.VerifyEKCert(r.EKCertificate(), r.EKPublic(), keylime.EKCertOptions{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Chain) < 2 {
		t.Errorf("chain %d certificates", len(v.Chain))
	}
	// The test manufacturer CA of StartTest is not swtpm's.
	if _, err := keylime.VerifyEKCert(r.EKCertificate(), r.EKPublic(), keylime.EKCertOptions{Roots: []*x509.Certificate{r.EKCA}}); err == nil {
		t.Error("EK certificate accepted under the wrong CA")
	}
}
