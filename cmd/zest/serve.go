package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/keylime"
	"github.com/zest-attest/zest/verifier/pull"
	"github.com/zest-attest/zest/verifier/quote"
	"github.com/zest-attest/zest/verifier/server"
)

// serveConfig is zest serve's configuration file (YAML or JSON).
type serveConfig struct {
	// Listen is the API address (host:port).
	Listen string `json:"listen"`
	// InsecureLoopback serves plain HTTP; only allowed on a loopback address.
	InsecureLoopback bool `json:"insecure_loopback,omitempty"`
	TLS              struct {
		Cert     string `json:"cert"`
		Key      string `json:"key"`
		ClientCA string `json:"client_ca"`
	} `json:"tls"`
	// Interval between rounds of one agent, Concurrency bounds rounds in
	// flight, MaxBackoff caps the retry wait after transport errors.
	Interval string `json:"interval,omitempty"`
	// ChallengeTTL bounds how long a push-mode challenge stays valid.
	ChallengeTTL string `json:"challenge_ttl,omitempty"`
	Concurrency  int    `json:"concurrency,omitempty"`
	MaxBackoff   string `json:"max_backoff,omitempty"`
	// Client is the certificate zest presents to agents and registrars.
	Client struct {
		Cert string `json:"cert"`
		Key  string `json:"key"`
	} `json:"client"`
	// Archive records every round (pull and push) when set: dir holds the
	// embedded SQLite store, transparency log and keys; db may name a
	// PostgreSQL store instead; key is the verifier's signing key.
	Archive struct {
		Dir string `json:"dir"`
		DB  string `json:"db"`
		Key string `json:"key"`
		// Rekor, when set, is the transparency log instead of the
		// embedded one.
		Rekor string `json:"rekor"`
	} `json:"archive"`
	// Defaults apply to every agent that does not set its own policies.
	Defaults policyFlags   `json:"defaults"`
	Agents   []agentConfig `json:"agents"`
}

type agentConfig struct {
	agentFlags
	policyFlags
	// Push: the agent pushes evidence (Keylime API v3) instead of being
	// polled; it needs only an id, an AK and policies.
	Push bool `json:"push,omitempty"`
}

// loadServeConfig reads the file strictly: unknown keys are errors, and
// relative paths are relative to the file.
func loadServeConfig(path string) (*serveConfig, error) {
	raw, err := readFileLimited(path, 16<<20)
	if err != nil {
		return nil, err
	}
	// YAML is decoded generically and re-encoded as JSON so one set of
	// (json) field tags and strict unknown-field checks serve both formats.
	var generic any
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	js, err := json.Marshal(generic)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var c serveConfig
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && !(len(*p) > 0 && (*p)[0] == '{') {
			*p = filepath.Join(base, *p)
		}
	}
	for _, p := range []*string{&c.TLS.Cert, &c.TLS.Key, &c.TLS.ClientCA, &c.Client.Cert, &c.Client.Key, &c.Archive.Dir, &c.Archive.Key,
		&c.Defaults.Runtime, &c.Defaults.RuntimeKey, &c.Defaults.MB, &c.Defaults.TPM} {
		rel(p)
	}
	for i := range c.Agents {
		ag := &c.Agents[i]
		for _, p := range []*string{&ag.AK, &ag.AgentCert, &ag.Cert, &ag.Key, &ag.EKCA, &ag.RegistrarCA,
			&ag.Runtime, &ag.RuntimeKey, &ag.MB, &ag.TPM} {
			rel(p)
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8881"
	}
	return &c, nil
}

func (a *app) serveCmd() *cobra.Command {
	var configPath string
	var insecureLoopback bool
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run zest as a verifier service: attest agents continuously, serve Keylime's evidence API and metrics",
		Long: `Run a long-lived verifier. It attests every agent in the configuration file
on an interval (pull mode, bounded concurrency, per-agent backoff), serves
Keylime's POST /v2.x/verify/evidence, GET /version, GET /status (every agent's
latest verdict) and GET /metrics (Prometheus text format).

The API is served over TLS (tls.cert/tls.key; with tls.client_ca, clients
must present a certificate chaining to it), or as plain HTTP with
insecure_loopback: true, which is refused unless the address is loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath == "" {
				return usageErrorf("give --config FILE")
			}
			cfg, err := loadServeConfig(configPath)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if insecureLoopback {
				cfg.InsecureLoopback = true
			}
			ctx, stop := signalContext()
			defer stop()
			return a.serve(ctx, cfg, nil)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "configuration `FILE` (YAML or JSON)")
	cmd.Flags().BoolVar(&insecureLoopback, "insecure-loopback", false, "serve plain HTTP (tests); refused unless the listen address is loopback")
	return cmd
}

// serve runs until ctx ends. ready, if set, receives the bound address.
func (a *app) serve(ctx context.Context, cfg *serveConfig, ready chan<- string) error {
	dur := func(name, s string, def time.Duration) (time.Duration, error) {
		if s == "" {
			return def, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, usageErrorf("%s %q: want a positive duration", name, s)
		}
		return d, nil
	}
	interval, err := dur("interval", cfg.Interval, 2*time.Second)
	if err != nil {
		return err
	}
	maxBackoff, err := dur("max_backoff", cfg.MaxBackoff, 0)
	if err != nil {
		return err
	}
	ttl, err := dur("challenge_ttl", cfg.ChallengeTTL, 30*time.Second)
	if err != nil {
		return err
	}
	var live *liveArchive
	if cfg.Archive.Dir != "" || cfg.Archive.DB != "" {
		f := archiveFlags{dir: cfg.Archive.Dir, db: cfg.Archive.DB}
		if f.dir == "" {
			f.dir = "zest-archive"
		}
		if live, err = a.openLiveArchive(ctx, f, cfg.Archive.Key, cfg.Archive.Rekor); err != nil {
			return err
		}
		defer live.Close()
	}
	var targets []*pull.Target
	pushAgents := map[string]*server.PushAgent{}
	sessions := map[string]*pull.Session{}
	for i := range cfg.Agents {
		ac := cfg.Agents[i]
		if ac.ID == "" {
			return usageErrorf("agents[%d]: id is required", i)
		}
		pf := ac.policyFlags
		if pf.Runtime == "" && pf.MB == "" && pf.TPM == "" {
			pf = cfg.Defaults
		}
		pol, opts, err := pf.load()
		if err != nil {
			return fmt.Errorf("agent %s: %w", ac.ID, err)
		}
		if ac.Push {
			if _, dup := pushAgents[ac.ID]; dup {
				return usageErrorf("agent %s is listed twice", ac.ID)
			}
			af := ac.agentFlags
			var ak *quote.AK
			switch {
			case af.AK != "":
				if ak, af.raw.ak, err = loadAKRaw(af.AK); err != nil {
					return fmt.Errorf("agent %s: %w", ac.ID, err)
				}
			case af.Registrar != "":
				if af.Cert == "" {
					af.Cert, af.Key = cfg.Client.Cert, cfg.Client.Key
				}
				if af.Cert == "" || af.Key == "" {
					return usageErrorf("push agent %s: the registrar needs a client certificate (client.cert, client.key)", ac.ID)
				}
				cc, err := tls.LoadX509KeyPair(af.Cert, af.Key)
				if err != nil {
					return fmt.Errorf("client certificate: %w", err)
				}
				if _, ak, err = af.fromRegistrar(ctx, cc, keylime.Options{}); err != nil {
					return fmt.Errorf("agent %s: %w", ac.ID, err)
				}
			default:
				return usageErrorf("push agent %s: give ak (a file) or registrar", ac.ID)
			}
			pushAgents[ac.ID] = &server.PushAgent{ID: ac.ID, AK: ak, Policies: pol, Options: opts}
			if live != nil {
				if err := live.register(ctx, ac.ID, &af, &pf, interval); err != nil {
					return err
				}
			}
			continue
		}
		af := ac.agentFlags
		if af.Cert == "" {
			af.Cert, af.Key = cfg.Client.Cert, cfg.Client.Key
		}
		t, err := af.target(ctx, pol, opts)
		if err != nil {
			return fmt.Errorf("agent %s: %w", ac.ID, err)
		}
		targets = append(targets, t)
		if live != nil {
			if err := live.register(ctx, ac.ID, &af, &pf, interval); err != nil {
				return err
			}
			// Resume where the last committed round left the agent.
			if sessions[ac.ID], err = live.rec.Session(ctx, ac.ID); err != nil {
				return err
			}
		}
	}

	var push *server.Push
	if len(pushAgents) > 0 {
		po := server.PushOptions{Agents: pushAgents, Interval: interval, ChallengeTTL: ttl}
		if live != nil {
			po.Store = live.rec
		}
		if push, err = server.NewPush(po); err != nil {
			return err
		}
	}
	srv := server.New(server.Options{
		Push:     push,
		Evidence: server.Library{Options: verifier.EvidenceOptions{MB: mbEvaluatorFromRefstate, Cache: verifier.NewPolicyCache(64)}},
		Logger:   slog.New(slog.NewTextHandler(a.stderr, nil)),
	})
	m := srv.Metrics()
	m.Declare("zest_rounds_total", "counter", "Pull-mode attestation rounds by verdict.", "verdict")
	m.Declare("zest_round_seconds_total", "counter", "Time spent in pull-mode rounds.")
	m.Declare("zest_agent_trusted", "gauge", "1 if the agent's latest round was trusted, else 0.", "agent")
	m.Declare("zest_agents", "gauge", "Agents attested in pull mode.")
	m.Set("zest_agents", float64(len(targets)))
	runner := &pull.Runner{
		Interval: interval, Concurrency: cfg.Concurrency, MaxBackoff: maxBackoff,
		Sink: sinkOf(live),
		OnRound: func(r *pull.Round) {
			m.Add("zest_rounds_total", 1, r.Verdict().String())
			m.Add("zest_round_seconds_total", r.End.Sub(r.Start).Seconds())
			v := 0.0
			if r.Verdict() == failure.VerdictTrusted {
				v = 1
			}
			m.Set("zest_agent_trusted", v, r.Agent)
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"agents": runner.Statuses()})
	})
	mux.Handle("/", srv)

	ln, httpSrv, err := a.listen(cfg, mux)
	if err != nil {
		return err
	}
	a.note("zest serve: listening on %s, polling %d agents every %s, %d push agents", ln.Addr(), len(targets), interval, len(pushAgents))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() {
		if httpSrv.TLSConfig != nil {
			errc <- httpSrv.ServeTLS(ln, "", "")
		} else {
			errc <- httpSrv.Serve(ln)
		}
	}()
	runDone := make(chan struct{})
	go func() {
		_ = runner.Run(ctx, targets, sessions)
		close(runDone)
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	<-runDone
	return nil
}

func (a *app) listen(cfg *serveConfig, h http.Handler) (net.Listener, *http.Server, error) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: log.New(a.stderr, "zest serve: ", 0)}
	if cfg.InsecureLoopback {
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, nil, usageErrorf("listen %q: %v", cfg.Listen, err)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, nil, usageErrorf("insecure_loopback serves plain HTTP and needs a loopback listen address, not %q", cfg.Listen)
		}
	} else {
		if cfg.TLS.Cert == "" || cfg.TLS.Key == "" {
			return nil, nil, usageErrorf("give tls.cert and tls.key (or insecure_loopback: true on a loopback address)")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if cfg.TLS.ClientCA != "" {
			cas, err := loadCerts(cfg.TLS.ClientCA)
			if err != nil {
				return nil, nil, err
			}
			pool := x509.NewCertPool()
			for _, c := range cas {
				pool.AddCert(c)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		hs.TLSConfig = tc
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, err
	}
	return ln, hs, nil
}

// sinkOf is the archive's round sink, or nil without an archive.
func sinkOf(l *liveArchive) pull.Sink {
	if l == nil {
		return nil
	}
	return l.rec
}
