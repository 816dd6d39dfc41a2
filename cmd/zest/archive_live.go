package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zest-attest/zest/archive"
)

// liveArchive is the archive the verifier writes rounds into while it runs
// (zest verify --archive, zest serve's archive section): a store, the
// verifier's signing key, and a transparency-log outbox drained in the
// background.
type liveArchive struct {
	flags archiveFlags
	st    archive.Store
	rec   *archive.Recorder
	log   *archive.LocalLog // nil when records go to Rekor
	stop  context.CancelFunc
	done  chan struct{}
}

// archiveSpec splits --archive: a postgres:// URL (with the default
// directory for keys and the embedded log) or a directory.
func archiveSpec(spec string) archiveFlags {
	if archive.IsPostgres(spec) {
		return archiveFlags{dir: "zest-archive", db: spec}
	}
	return archiveFlags{dir: spec}
}

// openLiveArchive opens the store, loads or creates the verifier key
// (DIR/verifier-key.pem unless keyPath is given; trusted in
// DIR/verifiers.pem) and starts draining the outbox into the embedded log.
func (a *app) openLiveArchive(ctx context.Context, f archiveFlags, keyPath, rekorURL string) (*liveArchive, error) {
	st, err := f.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	fail := func(err error) (*liveArchive, error) {
		st.Close()
		return nil, err
	}
	if keyPath == "" {
		keyPath = filepath.Join(f.dir, "verifier-key.pem")
		if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
			pemKey, err := archive.GenerateKeyPEM("ecdsa-p256")
			if err != nil {
				return fail(err)
			}
			if err := writeFileAtomic(keyPath, pemKey, 0o600); err != nil {
				return fail(err)
			}
			a.note("archive: created verifier key %s", keyPath)
		}
	}
	signer, err := archive.LoadSigner(keyPath)
	if err != nil {
		return fail(err)
	}
	if err := trustSigner(f.verifiersPath(), signer); err != nil {
		return fail(err)
	}
	l := &liveArchive{flags: f, st: st, done: make(chan struct{})}
	var tl archive.TransparencyLog
	if rekorURL != "" {
		rl, err := archive.NewRekorLog(rekorURL)
		if err != nil {
			return fail(err)
		}
		// Pin the log's key on first use, as zest archive drain does; a
		// Rekor that is down now is pinned later by drain.
		if _, err := os.Stat(f.rekorKeyPath()); errors.Is(err, os.ErrNotExist) {
			if k, err := rl.Key(ctx); err == nil {
				b, _ := json.MarshalIndent(k, "", "  ")
				if err := writeFileAtomic(f.rekorKeyPath(), append(b, '\n'), 0o644); err != nil {
					return fail(err)
				}
			}
		}
		tl = rl
	} else {
		if l.log, err = archive.OpenLocalLog(f.logDir(), "zest-archive/"+hostname()); err != nil {
			return fail(err)
		}
		tl = l.log
	}
	keys, _, err := f.trust(nil, "")
	if err != nil {
		l.closeLog()
		return fail(err)
	}
	l.rec = &archive.Recorder{W: &archive.Writer{Store: st, Signer: signer, Log: tl.Name()}, Verifier: "zest@" + hostname()}
	octx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	// The outbox retries with backoff while the log is unreachable; rounds
	// keep being committed meanwhile and drain when it is back.
	ob := &archive.Outbox{Store: st, Log: tl, Keys: keys, OnError: func(err error) { a.note("archive: %v", err) }}
	go func() {
		defer close(l.done)
		_ = ob.Run(octx, time.Second)
		// A last pass so what was recorded before shutdown is logged.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = ob.Drain(dctx)
	}()
	return l, nil
}

// register records an agent and its policies.
func (l *liveArchive) register(ctx context.Context, id string, af *agentFlags, pf *policyFlags, interval time.Duration) error {
	var opts []string
	if af.AllowUnbound {
		opts = append(opts, "AllowUnboundKey")
	}
	if pf.AllowViolations {
		opts = append(opts, "AllowViolations")
	}
	if pf.AllowQuirks {
		opts = append(opts, "AllowEventLogQuirks")
	}
	return l.rec.Register(ctx, id, archive.AgentMeta{
		AK: af.raw.ak, EK: af.raw.ek, EKCert: af.raw.ekCert, MTLSCert: af.raw.mtlsCert,
		RuntimePolicy: pf.raw.runtime, MBPolicy: pf.raw.mb, TPMPolicy: pf.raw.tpm,
		Interval: interval, Options: opts,
	})
}

// Close stops the outbox after a final drain and closes everything.
func (l *liveArchive) Close() {
	l.stop()
	<-l.done
	l.closeLog()
	l.st.Close()
}

func (l *liveArchive) closeLog() {
	if l.log != nil {
		l.log.Close()
	}
}
