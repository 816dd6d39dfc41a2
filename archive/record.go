package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// Record type names, carried in every body so a signature over one kind can
// never be replayed as another.
const (
	TypeRegistration = "zest.archive.registration/v1"
	TypeRound        = "zest.archive.round/v1"
)

// Kind tells registrations from rounds in a store.
type Kind string

const (
	KindRegistration Kind = "registration"
	KindRound        Kind = "round"
)

// Ref names a blob or policy by content: "sha256:" + 64 lowercase hex
// digits. The empty Ref means "none".
type Ref string

// RefOf returns the content reference of data.
func RefOf(data []byte) Ref {
	s := sha256.Sum256(data)
	return Ref("sha256:" + hex.EncodeToString(s[:]))
}

// Valid reports whether r is empty or a well-formed sha256 reference.
func (r Ref) Valid() bool {
	if r == "" {
		return true
	}
	h, ok := strings.CutPrefix(string(r), "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Registration is what the registrar vouched for when an agent registered:
// the keys a later replay needs to check quotes, even after the agent is
// gone.
type Registration struct {
	Type    string    `json:"type"`
	AgentID string    `json:"agent_id"`
	Time    time.Time `json:"time"`
	// AK is the attestation key as registered (TPM2B_PUBLIC bytes, or a
	// PEM/DER public key), stored as a blob.
	AK       Ref    `json:"ak"`
	EK       Ref    `json:"ek,omitempty"`
	EKCert   Ref    `json:"ek_cert,omitempty"`
	MTLSCert Ref    `json:"mtls_cert,omitempty"`
	Verifier string `json:"verifier"`
}

// Round is one attestation round: the raw evidence exactly as received,
// the policies it was evaluated against, and the outcome.
type Round struct {
	Type    string    `json:"type"`
	AgentID string    `json:"agent_id"`
	Seq     uint64    `json:"seq"` // per agent, strictly increasing
	Time    time.Time `json:"time"`
	// Interval is the polling interval in force, so replay can tell a gap
	// from a slow schedule.
	IntervalMS int64    `json:"interval_ms,omitempty"`
	Evidence   Evidence `json:"evidence"`
	// RuntimePolicy and MBPolicy reference policy blobs by content hash.
	RuntimePolicy Ref             `json:"runtime_policy,omitempty"`
	MBPolicy      Ref             `json:"mb_policy,omitempty"`
	TPMPolicy     Ref             `json:"tpm_policy,omitempty"`
	Verdict       failure.Verdict `json:"verdict"`
	Failures      failure.List    `json:"failures"`
	// Options lists the weakening options (Allow…) in force.
	Options  []string `json:"options,omitempty"`
	Verifier string   `json:"verifier"`
	// State is the verifier's per-agent state after this round (IMA
	// offset, running PCR 10, TPM clock), so a restarted verifier resumes
	// where it stopped; replay recomputes it.
	State json.RawMessage `json:"state,omitempty"`
}

// Evidence is what the agent sent in one round.
type Evidence struct {
	Quote   string `json:"quote"` // Keylime quote string ("r" + base64 parts)
	Nonce   string `json:"nonce"`
	HashAlg string `json:"hash_alg"`
	SignAlg string `json:"sign_alg,omitempty"`
	EncAlg  string `json:"enc_alg,omitempty"`
	// AK references the attestation key blob the quote was checked with.
	AK Ref `json:"ak"`
	// IMAStart is the index of the first IMA entry sent in this round
	// (Keylime's ima_measurement_list_entry); IMALines is a blob holding
	// only this round's lines, IMACount their number. Replay chains rounds
	// of one boot to rebuild the log.
	IMAStart uint64 `json:"ima_start"`
	IMACount uint64 `json:"ima_count"`
	IMALines Ref    `json:"ima_lines,omitempty"`
	// UEFILog references the binary measured-boot log blob.
	UEFILog Ref `json:"uefi_log,omitempty"`
	// Mode is "pull" (Nonce is the ASCII nonce sent to the agent) or
	// "push" (Nonce is the base64 challenge); empty means pull.
	Mode string `json:"mode,omitempty"`
	// Mask is the PCR selection that was requested (bit n = PCR n).
	Mask uint32 `json:"mask,omitempty"`
	// Data references the bytes the quote binds into PCR 16 (the agent's
	// payload public key PEM in pull mode), if any.
	Data     Ref   `json:"data,omitempty"`
	BootTime int64 `json:"boot_time,omitempty"`
}

// Refs returns every blob the round references.
func (r *Round) Refs() []Ref {
	return nonEmpty(r.Evidence.AK, r.Evidence.IMALines, r.Evidence.UEFILog, r.Evidence.Data, r.RuntimePolicy, r.MBPolicy, r.TPMPolicy)
}

// Refs returns every blob the registration references.
func (r *Registration) Refs() []Ref { return nonEmpty(r.AK, r.EK, r.EKCert, r.MTLSCert) }

func nonEmpty(refs ...Ref) []Ref {
	var out []Ref
	for _, r := range refs {
		if r != "" {
			out = append(out, r)
		}
	}
	return out
}

func (r *Round) check() error {
	if r.Type != TypeRound {
		return fmt.Errorf("round: type is %q, want %q", r.Type, TypeRound)
	}
	if r.AgentID == "" || len(r.AgentID) > 255 {
		return fmt.Errorf("round: agent_id must be 1..255 bytes")
	}
	if r.Time.IsZero() {
		return fmt.Errorf("round %s/%d: time missing", r.AgentID, r.Seq)
	}
	if r.Evidence.Mode != "" && r.Evidence.Mode != "pull" && r.Evidence.Mode != "push" {
		return fmt.Errorf("round %s/%d: mode %q is neither pull nor push", r.AgentID, r.Seq, r.Evidence.Mode)
	}
	for _, ref := range []Ref{r.Evidence.AK, r.Evidence.IMALines, r.Evidence.UEFILog, r.Evidence.Data, r.RuntimePolicy, r.MBPolicy, r.TPMPolicy} {
		if !ref.Valid() {
			return fmt.Errorf("round %s/%d: malformed reference %q", r.AgentID, r.Seq, ref)
		}
	}
	return nil
}

func (r *Registration) check() error {
	if r.Type != TypeRegistration {
		return fmt.Errorf("registration: type is %q, want %q", r.Type, TypeRegistration)
	}
	if r.AgentID == "" || len(r.AgentID) > 255 {
		return fmt.Errorf("registration: agent_id must be 1..255 bytes")
	}
	if r.AK == "" {
		return fmt.Errorf("registration %s: ak missing", r.AgentID)
	}
	for _, ref := range []Ref{r.AK, r.EK, r.EKCert, r.MTLSCert} {
		if !ref.Valid() {
			return fmt.Errorf("registration %s: malformed reference %q", r.AgentID, ref)
		}
	}
	return nil
}

// Record is a signed registration or round: Body is the RFC 8785 encoding
// of the Registration or Round, Sig the verifier's signature over Body
// (ECDSA: ASN.1 over SHA-256(Body); Ed25519: over Body) by the key whose
// SPKI hashes to KeyID. Kind, AgentID, Seq and Time are copies of body
// fields kept for indexing; Open checks they agree with the body.
type Record struct {
	Kind    Kind      `json:"kind"`
	AgentID string    `json:"agent_id"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Body    []byte    `json:"body"`
	KeyID   string    `json:"key_id"`
	Sig     []byte    `json:"sig"`
}

// Digest is SHA-256 of the canonical body: what is signed and what the
// transparency log commits to.
func (r *Record) Digest() [32]byte { return sha256.Sum256(r.Body) }

// Blob is content-addressed data: an AK, a UEFI log, a round's IMA lines,
// a policy.
type Blob struct {
	Ref  Ref
	Data []byte
}

// NewBlob wraps data with its reference.
func NewBlob(data []byte) Blob { return Blob{Ref: RefOf(data), Data: data} }

// SignRound canonicalizes and signs a round.
func SignRound(s *Signer, r *Round) (*Record, error) {
	if r.Type == "" {
		r.Type = TypeRound
	}
	r.Time = r.Time.UTC()
	if r.Failures == nil {
		r.Failures = failure.List{}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return s.sign(KindRound, r.AgentID, r.Seq, r.Time, r)
}

// SignRegistration canonicalizes and signs a registration.
func SignRegistration(s *Signer, r *Registration) (*Record, error) {
	if r.Type == "" {
		r.Type = TypeRegistration
	}
	r.Time = r.Time.UTC()
	if err := r.check(); err != nil {
		return nil, err
	}
	return s.sign(KindRegistration, r.AgentID, 0, r.Time, r)
}

func (s *Signer) sign(kind Kind, agent string, seq uint64, t time.Time, v any) (*Record, error) {
	body, err := MarshalCanonical(v)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, agent, err)
	}
	sig, err := s.Sign(body)
	if err != nil {
		return nil, err
	}
	return &Record{Kind: kind, AgentID: agent, Seq: seq, Time: t, Body: body, KeyID: s.KeyID, Sig: sig}, nil
}

// Open checks the record's signature with keys and its index fields
// against the body, and decodes the body into a *Round or *Registration.
func (r *Record) Open(keys Keyring) (any, error) {
	if err := keys.Verify(r.KeyID, r.Body, r.Sig); err != nil {
		return nil, fmt.Errorf("%s %s/%d: %w", r.Kind, r.AgentID, r.Seq, err)
	}
	return r.decode()
}

// decode parses the body without checking the signature.
func (r *Record) decode() (any, error) {
	if !IsCanonical(r.Body) {
		if _, err := Canonicalize(r.Body); err != nil {
			return nil, fmt.Errorf("%s %s/%d: body: %w", r.Kind, r.AgentID, r.Seq, err)
		}
		return nil, fmt.Errorf("%s %s/%d: body is not in canonical form", r.Kind, r.AgentID, r.Seq)
	}
	var agent string
	var seq uint64
	var t time.Time
	var out any
	switch r.Kind {
	case KindRound:
		var rd Round
		if err := strictUnmarshal(r.Body, &rd); err != nil {
			return nil, fmt.Errorf("round %s/%d: %w", r.AgentID, r.Seq, err)
		}
		if err := rd.check(); err != nil {
			return nil, err
		}
		agent, seq, t, out = rd.AgentID, rd.Seq, rd.Time, &rd
	case KindRegistration:
		var rg Registration
		if err := strictUnmarshal(r.Body, &rg); err != nil {
			return nil, fmt.Errorf("registration %s: %w", r.AgentID, err)
		}
		if err := rg.check(); err != nil {
			return nil, err
		}
		agent, t, out = rg.AgentID, rg.Time, &rg
	default:
		return nil, fmt.Errorf("record kind %q unknown", r.Kind)
	}
	if agent != r.AgentID || seq != r.Seq || !t.Equal(r.Time) {
		return nil, fmt.Errorf("%s %s/%d: index fields (agent %q, seq %d, time %s) disagree with the signed body",
			r.Kind, r.AgentID, r.Seq, agent, seq, t.Format(time.RFC3339Nano))
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
