// Package pull attests Keylime agents the way Keylime's verifier does in
// pull mode: ask the agent for an integrity quote with a fresh nonce, the
// policies' PCR mask and the next IMA entry, then verify the answer with the
// verifier library and carry the per-agent state to the next round.
//
// Attest runs one round; Runner keeps many agents attested on an interval
// with bounded concurrency and per-agent backoff. Neither stores anything:
// every round goes to a Sink the caller provides (the archive in zest
// serve), so this package does not depend on the archive.
package pull

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/keylime"
	"github.com/zest-attest/zest/verifier/quote"
)

// Event ids of transport problems (Keylime's "internal" component).
const (
	IDNoQuote  = "internal.verifier.no_quote"
	IDBadReply = "qoute_validation.invalid_data"
)

// Target is one agent to attest.
type Target struct {
	// ID is the agent UUID.
	ID string
	// Client talks to the agent (mTLS, pinned agent certificate).
	Client *keylime.AgentClient
	// AK verifies the agent's quotes (from the registrar or a file).
	AK *quote.AK
	// Policies the agent is held to.
	Policies verifier.Policies
	// Options of the verifier library.
	Options verifier.Options
	// AllowUnboundKey skips the PCR 16 payload-key binding. By default the
	// agent's pubkey must be bound into PCR 16, as in Keylime.
	AllowUnboundKey bool
	// EncAlgs are the accepted key families of the agent's enc_alg
	// (Keylime's accept_tpm_encryption_algs); nil means DefaultEncAlgs. An
	// entry matches itself and its sized forms ("rsa" matches "rsa2048",
	// which agents from API 2.5 send).
	EncAlgs []string
}

// DefaultEncAlgs is Keylime's default accept_tpm_encryption_algs.
var DefaultEncAlgs = []string{"ecc", "rsa"}

// IDInvalidEncAlg is Keylime's event for an enc_alg not accepted.
const IDInvalidEncAlg = "qoute_validation.invalid_enc_alg"

func encAlgAccepted(got string, accepted []string) bool {
	if accepted == nil {
		accepted = DefaultEncAlgs
	}
	for _, a := range accepted {
		if got == a {
			return true
		}
		if rest, ok := strings.CutPrefix(got, a); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// Session is what zest keeps about an agent between rounds.
type Session struct {
	// State is the verifier library's per-agent state.
	State verifier.State `json:"state"`
	// PubKey is the agent's payload key PEM, cached after the first round
	// so later rounds ask with partial=1.
	PubKey string `json:"pubkey,omitempty"`
}

// Round is one attestation round, with the raw evidence for archiving.
type Round struct {
	Agent string    `json:"agent"`
	Nonce string    `json:"nonce"`
	Mask  uint32    `json:"mask"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// IMAEntry is the entry requested.
	IMAEntry uint64 `json:"ima_entry"`
	// Response is the agent's answer as received (nil on transport error).
	Response *keylime.QuoteResponse `json:"-"`
	// Result of the verification; for a transport error it carries the
	// error failure and Verdict error.
	Result *verifier.Result `json:"result"`
}

// Verdict is the round's verdict.
func (r *Round) Verdict() failure.Verdict { return r.Result.Verdict }

// nonceLen is what Keylime's verifier sends (random_password(20)); it fits
// the 34-byte qualifying-data limit of SHA-256-only TPMs.
const nonceLen = 20

// Nonce returns a fresh nonce of ASCII letters and digits, without the
// modulo bias Keylime's generator has.
func Nonce() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, nonceLen)
	buf := make([]byte, 64)
	for len(out) < nonceLen {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < 256-256%len(alphabet) && len(out) < nonceLen {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// Attest runs one round against t, updating s only with what verified.
func Attest(ctx context.Context, t *Target, s *Session) *Round {
	r := &Round{Agent: t.ID, Start: time.Now()}
	defer func() { r.End = time.Now() }()
	errRound := func(f failure.Failure) *Round {
		r.Result = &verifier.Result{Failures: failure.List{f}, Next: s.State}
		r.Result.Verdict = r.Result.Failures.Verdict()
		return r
	}
	nonce, err := Nonce()
	if err != nil {
		return errRound(failure.Errorf("internal.verifier.exception", nil, "no randomness for a nonce: %v", err))
	}
	r.Nonce = nonce
	r.Mask = t.Policies.Mask(!t.AllowUnboundKey)
	r.IMAEntry = s.State.IMA.NextEntry
	resp, err := t.Client.IntegrityQuote(ctx, keylime.IntegrityRequest{
		Nonce: nonce, Mask: r.Mask, Partial: s.PubKey != "", IMAEntry: r.IMAEntry,
	})
	if err != nil {
		return errRound(failure.Errorf(IDNoQuote, map[string]any{"error": err.Error()}, "no quote from agent %s: %v", t.ID, err))
	}
	r.Response = resp
	if resp.Quote == "" {
		return errRound(failure.Rejectf(IDBadReply, nil, "the agent's answer has no quote"))
	}
	if !encAlgAccepted(resp.EncAlg, t.EncAlgs) {
		return errRound(failure.Rejectf(IDInvalidEncAlg, map[string]any{"enc_alg": resp.EncAlg},
			"the agent's key algorithm %q is not accepted", resp.EncAlg))
	}
	pubkey := s.PubKey
	if resp.PubKey != nil && *resp.PubKey != "" {
		pubkey = *resp.PubKey
	}
	var data []byte
	if !t.AllowUnboundKey {
		if pubkey == "" {
			return errRound(failure.Rejectf(failure.QuoteNoPubkey, nil, "the agent sent no payload key and none is cached"))
		}
		data = []byte(pubkey)
	}
	ev := verifier.Evidence{Quote: resp.Quote, HashAlg: resp.HashAlg}
	if resp.IMAMeasurementList != nil {
		ev.IMAList = strings.NewReader(*resp.IMAMeasurementList)
		if resp.IMAMeasurementListEntry != nil {
			ev.IMAStart = *resp.IMAMeasurementListEntry
		}
	}
	if resp.MBMeasurementList != nil && *resp.MBMeasurementList != "" {
		b, err := base64.StdEncoding.DecodeString(*resp.MBMeasurementList)
		if err != nil {
			return errRound(failure.Rejectf(failure.MBParser, nil, "mb_measurement_list is not base64: %v", err))
		}
		ev.MBLog = b
	}
	r.Result = verifier.Verify(t.AK, verifier.Challenge{Nonce: []byte(nonce), Mask: r.Mask, Data: data}, ev, t.Policies, s.State, t.Options)
	if r.Result.Quote != nil {
		// Only a key the quote bound (PCR 16) is cached.
		s.PubKey = pubkey
	}
	s.State = r.Result.Next
	return r
}

// ErrStopped is returned by Runner.Run when its context ends.
var ErrStopped = errors.New("pull: stopped")
