package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/policygen/dsse"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/keylime"
	"github.com/zest-attest/zest/verifier/pull"
	"github.com/zest-attest/zest/verifier/quote"
)

// policyFlags are the policy options shared by zest verify and zest serve.
type policyFlags struct {
	Runtime         string `json:"runtime_policy,omitempty"`
	RuntimeKey      string `json:"runtime_policy_key,omitempty"`
	MB              string `json:"mb_policy,omitempty"`
	TPM             string `json:"tpm_policy,omitempty"`
	AllowViolations bool   `json:"allow_violations,omitempty"`
	AllowQuirks     bool   `json:"allow_eventlog_quirks,omitempty"`

	// raw holds the policy documents as loaded (verified payload for a
	// signed runtime policy), for the archive.
	raw struct{ runtime, mb, tpm []byte }
}

func (p *policyFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&p.Runtime, "runtime-policy", "", "Keylime runtime (IMA) policy `FILE` (a DSSE envelope needs --runtime-policy-key)")
	c.Flags().StringVar(&p.RuntimeKey, "runtime-policy-key", "", "public key or certificate `FILE` that must have signed a DSSE-wrapped runtime policy")
	c.Flags().StringVar(&p.MB, "mb-policy", "", "Keylime measured-boot reference state `FILE`")
	c.Flags().StringVar(&p.TPM, "tpm-policy", "", "Keylime tpm_policy: `FILE` or inline JSON ({\"15\":[\"…\"],\"mask\":\"0x8000\"})")
	c.Flags().BoolVar(&p.AllowViolations, "allow-ima-violations", false, "accept IMA violation (ToMToU/open_writers) records, as Keylime does by default")
	c.Flags().BoolVar(&p.AllowQuirks, "allow-eventlog-quirks", false, "let the UEFI log replay try zest's named firmware quirks")
}

// load reads and compiles the policies. At least one must be given.
func (p *policyFlags) load() (verifier.Policies, verifier.Options, error) {
	var pol verifier.Policies
	opts := verifier.Options{AllowEventLogQuirks: p.AllowQuirks}
	if p.Runtime == "" && p.MB == "" && p.TPM == "" {
		return pol, opts, usageErrorf("give at least one of --runtime-policy, --mb-policy and --tpm-policy")
	}
	if p.Runtime != "" {
		data, err := readFileLimited(p.Runtime, 1<<30)
		if err != nil {
			return pol, opts, err
		}
		if dsse.IsEnvelope(data) {
			if p.RuntimeKey == "" {
				return pol, opts, usageErrorf("%s is a signed (DSSE) policy: give --runtime-policy-key to verify it", p.Runtime)
			}
			kb, err := os.ReadFile(p.RuntimeKey)
			if err != nil {
				return pol, opts, err
			}
			key, err := dsse.LoadPublicKey(kb)
			if err != nil {
				return pol, opts, fmt.Errorf("%s: %w", p.RuntimeKey, err)
			}
			env, err := dsse.ParseEnvelope(data)
			if err != nil {
				return pol, opts, fmt.Errorf("%s: %w", p.Runtime, err)
			}
			if data, err = dsse.Verify(env, key); err != nil {
				return pol, opts, fmt.Errorf("%s: signature not verified: %w", p.Runtime, err)
			}
		} else if p.RuntimeKey != "" {
			return pol, opts, fmt.Errorf("%s is not signed, but --runtime-policy-key asks for a signed policy", p.Runtime)
		}
		p.raw.runtime = data
		rp, err := policygen.ParseRuntimePolicy(data, p.Runtime)
		if err != nil {
			return pol, opts, err
		}
		if pol.Runtime, err = ima.Compile(rp, ima.Options{AllowViolations: p.AllowViolations}); err != nil {
			return pol, opts, fmt.Errorf("%s: %w", p.Runtime, err)
		}
	}
	if p.MB != "" {
		data, err := readFileLimited(p.MB, 64<<20)
		if err != nil {
			return pol, opts, err
		}
		p.raw.mb = data
		if pol.MB, err = mbEvaluatorFromRefstate(data); err != nil {
			return pol, opts, fmt.Errorf("%s: %w", p.MB, err)
		}
	}
	if p.TPM != "" {
		data := []byte(p.TPM)
		if !strings.HasPrefix(strings.TrimSpace(p.TPM), "{") {
			var err error
			if data, err = readFileLimited(p.TPM, 1<<20); err != nil {
				return pol, opts, err
			}
		}
		tp, err := verifier.ParseTPMPolicy(data)
		if err != nil {
			return pol, opts, err
		}
		p.raw.tpm = data
		pol.TPM = tp
	}
	return pol, opts, nil
}

// agentFlags say how to reach and authenticate one agent.
type agentFlags struct {
	Agent        string `json:"url,omitempty"`
	ID           string `json:"id,omitempty"`
	Registrar    string `json:"registrar,omitempty"`
	RegistrarCA  string `json:"registrar_ca,omitempty"`
	AK           string `json:"ak,omitempty"`
	AgentCert    string `json:"agent_cert,omitempty"`
	Cert         string `json:"client_cert,omitempty"`
	Key          string `json:"client_key,omitempty"`
	EKCA         string `json:"ek_ca,omitempty"`
	AllowUnbound bool   `json:"allow_unbound_key,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
	// Accepted algorithms (Keylime's accept_tpm_*_algs); empty: defaults.
	HashAlgs []string `json:"accept_hash_algs,omitempty"`
	SignAlgs []string `json:"accept_sign_algs,omitempty"`
	EncAlgs  []string `json:"accept_enc_algs,omitempty"`

	// raw holds the key material as obtained, for the archive.
	raw struct{ ak, ek, ekCert, mtlsCert []byte }
}

func (f *agentFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.Agent, "agent", "", "agent `URL` (https://host:9002); default: the registrar's ip:port")
	c.Flags().StringVar(&f.ID, "agent-id", "", "agent UUID (needed with --registrar)")
	c.Flags().StringVar(&f.Registrar, "registrar", "", "Keylime registrar `URL` to take the AK and agent certificate from")
	c.Flags().StringVar(&f.RegistrarCA, "registrar-ca", "", "CA `FILE` the registrar's TLS certificate must chain to")
	c.Flags().StringVar(&f.AK, "ak", "", "attestation key `FILE`: TPM2B_PUBLIC (binary or base64, as the registrar's aik_tpm) or PEM")
	c.Flags().StringVar(&f.AgentCert, "agent-cert", "", "the agent's mTLS certificate `FILE` to pin (default: the registrar's mtls_cert)")
	c.Flags().StringVar(&f.Cert, "cert", "", "client certificate `FILE` zest presents to the agent (and registrar)")
	c.Flags().StringVar(&f.Key, "key", "", "private key `FILE` of --cert")
	c.Flags().StringVar(&f.EKCA, "ek-ca", "", "`DIR` of TPM manufacturer CA certificates the EK certificate must chain to (registrar mode)")
	c.Flags().BoolVar(&f.AllowUnbound, "allow-unbound-key", false, "do not require the agent's payload key in PCR 16")
	c.Flags().StringVar(&f.Timeout, "timeout", "30s", "per-request `DURATION`")
	c.Flags().StringSliceVar(&f.HashAlgs, "accept-hash-algs", nil, "quote hash algorithms to accept (default sha256,sha384,sha512)")
	c.Flags().StringSliceVar(&f.SignAlgs, "accept-sign-algs", nil, "quote signature schemes to accept (default rsassa,rsapss,ecdsa)")
	c.Flags().StringSliceVar(&f.EncAlgs, "accept-enc-algs", nil, "agent key families to accept (default ecc,rsa)")
}

// target resolves the flags into a pull target (contacting the registrar
// when asked to).
func (f *agentFlags) target(ctx context.Context, pol verifier.Policies, opts verifier.Options) (*pull.Target, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, usageErrorf("give --cert and --key: Keylime agents require a client certificate")
	}
	clientCert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if f.Timeout == "" {
		f.Timeout = "30s"
	}
	timeout, err := time.ParseDuration(f.Timeout)
	if err != nil || timeout <= 0 {
		return nil, usageErrorf("--timeout %q: want a positive duration", f.Timeout)
	}
	copts := keylime.Options{Timeout: timeout}
	for _, l := range []struct {
		names []string
		dst   *[]quote.Alg
	}{{f.HashAlgs, &opts.Hashes}, {f.SignAlgs, &opts.SignAlgs}} {
		for _, n := range l.names {
			a, err := quote.ParseAlg(n)
			if err != nil {
				return nil, usageErrorf("accepted algorithm %q: %v", n, err)
			}
			if a == quote.AlgSHA1 {
				opts.AllowSHA1 = true
			}
			*l.dst = append(*l.dst, a)
		}
	}
	t := &pull.Target{ID: f.ID, Policies: pol, Options: opts, AllowUnboundKey: f.AllowUnbound, EncAlgs: f.EncAlgs}
	var pinned *x509.Certificate
	agentURL := f.Agent
	switch {
	case f.Registrar != "":
		rec, ak, err := f.fromRegistrar(ctx, clientCert, copts)
		if err != nil {
			return nil, err
		}
		t.AK = ak
		pinned = rec.MTLSCert
		if agentURL == "" {
			agentURL = "https://" + net.JoinHostPort(rec.IP, strconv.Itoa(rec.Port))
		}
	case f.AK != "":
		if t.AK, f.raw.ak, err = loadAKRaw(f.AK); err != nil {
			return nil, err
		}
	default:
		return nil, usageErrorf("give --ak FILE or --registrar URL --agent-id ID: zest needs the agent's attestation key")
	}
	if agentURL == "" {
		return nil, usageErrorf("give --agent URL")
	}
	if f.AgentCert != "" {
		certs, err := loadCerts(f.AgentCert)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("--agent-cert %s: %v", f.AgentCert, err)
		}
		pinned = certs[0]
		f.raw.mtlsCert = pinned.Raw
	}
	u, err := url.Parse(agentURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usageErrorf("--agent %q: want https://host:port", agentURL)
	}
	var tlsConf *tls.Config
	if u.Scheme == "https" {
		if pinned == nil {
			return nil, usageErrorf("give --agent-cert: zest pins the agent's certificate and none came from a registrar")
		}
		if tlsConf, err = keylime.AgentTLSConfig(clientCert, pinned); err != nil {
			return nil, err
		}
	}
	if t.Client, err = keylime.NewAgentClient(agentURL, tlsConf, copts); err != nil {
		return nil, err
	}
	if t.ID == "" {
		t.ID = u.Host
	}
	return t, nil
}

// fromRegistrar takes the agent's AK (and certificates) from a Keylime
// registrar, checking the EK certificate chain when --ek-ca is given.
func (f *agentFlags) fromRegistrar(ctx context.Context, clientCert tls.Certificate, copts keylime.Options) (*keylime.RegistrarAgent, *quote.AK, error) {
	if f.ID == "" {
		return nil, nil, usageErrorf("--registrar needs --agent-id")
	}
	var roots *x509.CertPool
	if f.RegistrarCA != "" {
		certs, err := loadCerts(f.RegistrarCA)
		if err != nil {
			return nil, nil, err
		}
		roots = x509.NewCertPool()
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	var rtls *tls.Config
	if strings.HasPrefix(f.Registrar, "https:") {
		rtls = keylime.RegistrarTLSConfig(clientCert, roots)
	}
	rc, err := keylime.NewRegistrarClient(f.Registrar, rtls, copts)
	if err != nil {
		return nil, nil, err
	}
	rec, err := rc.GetAgent(ctx, f.ID)
	if err != nil {
		return nil, nil, err
	}
	ak, err := quote.ParseAK(rec.AIKTPM)
	if err != nil {
		return nil, nil, fmt.Errorf("registrar aik_tpm of %s: %w", f.ID, err)
	}
	if f.EKCA != "" {
		cas, err := loadCerts(f.EKCA)
		if err != nil {
			return nil, nil, err
		}
		if _, err := keylime.VerifyEKCert(rec.EKCert, rec.EKTPM, keylime.EKCertOptions{Roots: cas}); err != nil {
			return nil, nil, fmt.Errorf("agent %s: %w", f.ID, err)
		}
	}
	f.raw.ak, f.raw.ek, f.raw.ekCert = rec.AIKTPM, rec.EKTPM, rec.EKCert
	if rec.MTLSCert != nil {
		f.raw.mtlsCert = rec.MTLSCert.Raw
	}
	return rec, ak, nil
}

// loadAK reads an AK file: binary TPM2B_PUBLIC, its base64 (the
// registrar's aik_tpm), or PEM/DER SubjectPublicKeyInfo.
func loadAK(path string) (*quote.AK, error) {
	ak, _, err := loadAKRaw(path)
	return ak, err
}

// loadAKRaw is loadAK that also returns the key bytes it parsed.
func loadAKRaw(path string) (*quote.AK, []byte, error) {
	b, err := readFileLimited(path, 64<<10)
	if err != nil {
		return nil, nil, err
	}
	ak, err := quote.ParseAK(b)
	if err == nil {
		return ak, b, nil
	}
	if dec, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); derr == nil {
		if ak, err2 := quote.ParseAK(dec); err2 == nil {
			return ak, dec, nil
		}
	}
	return nil, nil, fmt.Errorf("%s: %w", path, err)
}

// runVerifyAgent is zest verify --agent: one round, or --watch rounds.
func (a *app) runVerifyAgent(ctx context.Context, af *agentFlags, pf *policyFlags, watch bool, interval time.Duration, count int, asJSON bool, arch *archiveOpts) error {
	pol, opts, err := pf.load()
	if err != nil {
		return err
	}
	t, err := af.target(ctx, pol, opts)
	if err != nil {
		return err
	}
	var live *liveArchive
	if arch.spec != "" {
		if live, err = a.openLiveArchive(ctx, archiveSpec(arch.spec), arch.key, arch.rekor); err != nil {
			return err
		}
		defer live.Close()
		if err := live.register(ctx, t.ID, af, pf, interval); err != nil {
			return err
		}
	}
	s := &pull.Session{}
	worst := failure.VerdictTrusted
	for n := 0; ; n++ {
		start := time.Now()
		before := *s
		r := pull.Attest(ctx, t, s)
		if ctx.Err() != nil && r.Response == nil {
			break
		}
		if r.Verdict() < worst {
			worst = r.Verdict()
		}
		if live != nil {
			if err := live.rec.Round(ctx, r, s); err != nil && !watch {
				return fmt.Errorf("archive: %w", err)
			} else if err != nil {
				// Not recorded (the database is down or restarting): as
				// the pull runner does, forget the round so the next one
				// asks the agent for the same IMA entries again and the
				// archive has no hole.
				a.note("archive: round not recorded, retrying next round: %v", err)
				*s = before
			}
		}
		rep := roundReport{Agent: t.ID, Verdict: r.Verdict(), Failures: r.Result.Failures}
		if asJSON {
			b, err := json.Marshal(struct {
				Time time.Time `json:"time"`
				roundReport
				IMAEntry uint64           `json:"ima_entry"`
				Result   *verifier.Result `json:"result"`
			}{r.End.UTC(), rep, r.IMAEntry, r.Result})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", b)
		} else {
			if watch {
				fmt.Fprintf(a.stdout, "%s ", r.End.UTC().Format(time.RFC3339))
			}
			a.printRound(rep)
		}
		if !watch || (count > 0 && n+1 >= count) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(max(interval-time.Since(start), 0)):
		}
		if ctx.Err() != nil {
			break
		}
	}
	return verdictExit(worst)
}

// archiveOpts are zest verify's archive flags.
type archiveOpts struct{ spec, key, rekor string }

func (o *archiveOpts) register(c *cobra.Command) {
	c.Flags().StringVar(&o.spec, "archive", "", "record every round in this archive: a directory (embedded SQLite store and transparency log) or a postgres:// URL")
	c.Flags().StringVar(&o.rekor, "archive-rekor", "", "enter archived records in this Rekor `URL` instead of the embedded transparency log")
	c.Flags().StringVar(&o.key, "archive-key", "", "verifier signing key `FILE` for archived records (default: DIR/verifier-key.pem, created if missing)")
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// loadCerts reads certificates from a PEM/DER file or a directory of them.
func loadCerts(path string) ([]*x509.Certificate, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return keylime.LoadCADir(path)
	}
	b, err := readFileLimited(path, keylime.MaxCAFileBytes)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("%s: no PEM or DER certificate", path)
		}
		out = append(out, c)
	}
	return out, nil
}
