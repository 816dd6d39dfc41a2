package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/quote"
)

// Push-model (Keylime API v3) attestation: the agent asks for an
// attestation (POST, with its capabilities), the verifier answers with a
// challenge and the evidence it wants, the agent sends the evidence
// (PATCH), the verifier verifies it. Shapes follow Keylime's
// AttestationController (JSON:API documents).
//
// Differences from Keylime, all on the safe side: evidence is verified
// before the answer (the answer to PATCH already carries the verdict);
// a failed verification never counts as attested; per-agent state lives in
// a Store, so a restart resumes every agent at its IMA offset.

// PushAgent is an agent allowed to push evidence.
type PushAgent struct {
	ID       string
	AK       *quote.AK
	Policies verifier.Policies
	Options  verifier.Options
}

// PushOptions configure push-mode attestation.
type PushOptions struct {
	// Agents maps agent ids to their AK and policies.
	Agents map[string]*PushAgent
	// Store keeps per-agent state; nil keeps it in memory only.
	Store Store
	// Interval is the minimum time between two attestations of one agent
	// (Keylime's quote_interval; 0: 2s).
	Interval time.Duration
	// ChallengeTTL is how long a challenge stays valid (0: 30s).
	ChallengeTTL time.Duration
	// OnRound is called after each verified round (metrics).
	OnRound func(*PushRound)
}

// Store keeps push-mode agent state. Commit stores the agent's state and,
// when round is not nil, the round, atomically: a restart never sees a
// round without its state or the other way around.
type Store interface {
	LoadPush(ctx context.Context, agent string) ([]byte, error) // nil, nil when none
	CommitPush(ctx context.Context, agent string, state []byte, round *PushRound) error
}

// PushRound is one verified push attestation with its raw evidence.
type PushRound struct {
	Agent     string           `json:"agent"`
	Index     uint64           `json:"index"`
	Challenge []byte           `json:"challenge"`
	Quote     string           `json:"quote"`
	HashAlg   string           `json:"hash_alg"`
	Mask      uint32           `json:"mask"`
	IMAStart  uint64           `json:"ima_start"`
	IMALines  string           `json:"ima_lines,omitempty"`
	MBLog     []byte           `json:"mb_log,omitempty"`
	Start     time.Time        `json:"start"`
	End       time.Time        `json:"end"`
	Result    *verifier.Result `json:"result"`
	// Body is the PATCH body as received.
	Body []byte `json:"-"`
}

// pushState is what the store keeps per agent.
type pushState struct {
	Index            uint64          `json:"index"`
	Stage            string          `json:"stage"`
	Challenge        []byte          `json:"challenge,omitempty"`
	HashAlg          string          `json:"hash_alg,omitempty"`
	SignAlg          string          `json:"signature_scheme,omitempty"`
	Mask             uint32          `json:"mask,omitempty"`
	IMAOffset        uint64          `json:"ima_offset"`
	WantUEFI         bool            `json:"want_uefi,omitempty"`
	CapabilitiesAt   time.Time       `json:"capabilities_received_at"`
	ExpiresAt        time.Time       `json:"challenges_expire_at"`
	EvidenceAt       time.Time       `json:"evidence_received_at,omitempty"`
	CompletedAt      time.Time       `json:"verification_completed_at,omitempty"`
	Evaluation       string          `json:"evaluation,omitempty"`
	Failures         failure.List    `json:"failures,omitempty"`
	BootTime         string          `json:"boot_time,omitempty"`
	Session          verifier.State  `json:"session"`
	LastTrusted      time.Time       `json:"last_trusted,omitempty"`
	ConsecutiveFails int             `json:"consecutive_failures,omitempty"`
	Extra            json.RawMessage `json:"extra,omitempty"`
}

const (
	stageAwaiting = "awaiting_evidence"
	stageComplete = "verification_complete"
)

// Push serves the v3 push-model routes.
type Push struct {
	opts  PushOptions
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	mem   map[string][]byte
}

// NewPush validates options and returns the push handler set.
func NewPush(opts PushOptions) (*Push, error) {
	for id, a := range opts.Agents {
		if a == nil || a.AK == nil || id == "" || a.ID != id {
			return nil, fmt.Errorf("push agent %q: needs an id and an AK", id)
		}
		if a.Policies.Runtime == nil && a.Policies.MB == nil && a.Policies.TPM == nil {
			return nil, fmt.Errorf("push agent %q: no policy", id)
		}
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.ChallengeTTL <= 0 {
		opts.ChallengeTTL = 30 * time.Second
	}
	return &Push{opts: opts, locks: map[string]*sync.Mutex{}, mem: map[string][]byte{}}, nil
}

func (p *Push) register(s *Server) {
	s.handle("/{ver}/agents/{id}/attestations", "POST", func(w http.ResponseWriter, r *http.Request) { p.create(s, w, r) })
	s.mux.HandleFunc("/{ver}/agents/{id}/attestations/{index}", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPatch:
			p.update(s, w, r)
		case http.MethodGet:
			p.show(s, w, r)
		default:
			w.Header().Set("Allow", "GET, PATCH")
			apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET or PATCH")
		}
	})
}

// agentLock serializes requests of one agent (a POST racing a PATCH).
func (p *Push) agentLock(id string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.locks[id]
	if !ok {
		l = &sync.Mutex{}
		p.locks[id] = l
	}
	return l
}

func (p *Push) load(ctx context.Context, id string) (*pushState, error) {
	var raw []byte
	var err error
	if p.opts.Store != nil {
		raw, err = p.opts.Store.LoadPush(ctx, id)
	} else {
		p.mu.Lock()
		raw = p.mem[id]
		p.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	st := &pushState{}
	if raw == nil {
		return st, nil
	}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("stored push state of %s: %w", id, err)
	}
	return st, nil
}

func (p *Push) commit(ctx context.Context, id string, st *pushState, round *PushRound) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if p.opts.Store != nil {
		return p.opts.Store.CommitPush(ctx, id, raw, round)
	}
	p.mu.Lock()
	p.mem[id] = raw
	p.mu.Unlock()
	return nil
}

// jsonapi is a JSON:API top-level document.
type jsonapi struct {
	Data   *resource       `json:"data,omitempty"`
	Meta   map[string]any  `json:"meta,omitempty"`
	Errors []apiErrorEntry `json:"errors,omitempty"`
}

type resource struct {
	Type       string            `json:"type"`
	ID         string            `json:"id,omitempty"`
	Attributes json.RawMessage   `json:"attributes"`
	Links      map[string]string `json:"links,omitempty"`
}

type apiErrorEntry struct {
	Status string `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func apiError(w http.ResponseWriter, status int, code, detail string) {
	writeJSONAPI(w, status, jsonapi{Errors: []apiErrorEntry{{Status: strconv.Itoa(status), Code: code, Detail: detail}}})
}

func writeJSONAPI(w http.ResponseWriter, status int, doc jsonapi) {
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}

var jsonapiTypes = []string{"application/vnd.api+json", "application/json"}

// --- capabilities (POST) ---

type evidenceSupported struct {
	EvidenceClass string `json:"evidence_class"`
	EvidenceType  string `json:"evidence_type"`
	Capabilities  struct {
		HashAlgorithms    []string         `json:"hash_algorithms"`
		SignatureSchemes  []string         `json:"signature_schemes"`
		AvailableSubjects map[string][]int `json:"available_subjects"`
		CertificationKeys []struct {
			Public string `json:"public"`
		} `json:"certification_keys"`
		SupportsPartialAccess bool     `json:"supports_partial_access"`
		Formats               []string `json:"formats"`
	} `json:"capabilities"`
}

type createAttributes struct {
	EvidenceSupported []evidenceSupported `json:"evidence_supported"`
	SystemInfo        struct {
		BootTime string `json:"boot_time"`
	} `json:"system_info"`
}

func decodeAttributes(body []byte, wantType string, v any) error {
	var doc struct {
		Data *struct {
			Type       string          `json:"type"`
			Attributes json.RawMessage `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("not a JSON:API document: %w", err)
	}
	if doc.Data == nil || doc.Data.Type != wantType || len(doc.Data.Attributes) == 0 {
		return fmt.Errorf("want data.type %q with attributes", wantType)
	}
	if err := json.Unmarshal(doc.Data.Attributes, v); err != nil {
		return fmt.Errorf("data.attributes: %w", err)
	}
	return nil
}

func (p *Push) lookup(w http.ResponseWriter, r *http.Request) (*PushAgent, bool) {
	if v, ok := apiVersion(r); !ok || !strings.HasPrefix(v, "3.") {
		apiError(w, http.StatusNotFound, "not_found", "push attestation is served under /v3.0")
		return nil, false
	}
	a := p.opts.Agents[r.PathValue("id")]
	if a == nil {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("No enrolled agent with ID '%s'.", r.PathValue("id")))
		return nil, false
	}
	return a, true
}

func (p *Push) create(s *Server, w http.ResponseWriter, r *http.Request) {
	a, ok := p.lookup(w, r)
	if !ok {
		return
	}
	body, ok := s.readJSONBody(w, r, jsonapiTypes...)
	if !ok {
		return
	}
	var attrs createAttributes
	if err := decodeAttributes(body, "attestation", &attrs); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	lock := p.agentLock(a.ID)
	lock.Lock()
	defer lock.Unlock()
	st, err := p.load(r.Context(), a.ID)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	now := s.opts.Now()
	if !st.EvidenceAt.IsZero() {
		if wait := st.EvidenceAt.Add(p.opts.Interval).Sub(now); wait > 0 {
			secs := int(wait.Seconds() + 0.999)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			apiError(w, http.StatusTooManyRequests, "premature_attestation",
				fmt.Sprintf("Cannot create attestation for agent '%s' before the configured interval has elapsed. Wait %d seconds before trying again.", a.ID, secs))
			return
		}
	}
	// Choose parameters from the capabilities.
	var quoteCaps *evidenceSupported
	var imaCaps, uefiCaps bool
	for i := range attrs.EvidenceSupported {
		e := &attrs.EvidenceSupported[i]
		switch {
		case e.EvidenceClass == "certification" && e.EvidenceType == "tpm_quote":
			quoteCaps = e
		case e.EvidenceClass == "log" && e.EvidenceType == "ima_log":
			imaCaps = true
		case e.EvidenceClass == "log" && e.EvidenceType == "uefi_log":
			uefiCaps = true
		}
	}
	if quoteCaps == nil {
		apiError(w, http.StatusUnprocessableEntity, "invalid_capabilities", "evidence_supported lacks a certification/tpm_quote item")
		return
	}
	hash := ""
	for _, h := range []string{"sha256", "sha384", "sha512"} {
		if slices.Contains(quoteCaps.Capabilities.HashAlgorithms, h) {
			hash = h
			break
		}
	}
	sign := ""
	for _, sch := range []string{"rsassa", "ecdsa", "rsapss"} {
		if slices.Contains(quoteCaps.Capabilities.SignatureSchemes, sch) {
			sign = sch
			break
		}
	}
	if hash == "" || sign == "" {
		apiError(w, http.StatusUnprocessableEntity, "invalid_capabilities",
			fmt.Sprintf("no acceptable hash algorithm (have %v; want sha256, sha384 or sha512) or signature scheme (have %v)",
				quoteCaps.Capabilities.HashAlgorithms, quoteCaps.Capabilities.SignatureSchemes))
		return
	}
	mask := a.Policies.Mask(false)
	pcrs := verifier.MaskPCRs(mask)
	avail := quoteCaps.Capabilities.AvailableSubjects[hash]
	for _, pcr := range pcrs {
		if !slices.Contains(avail, pcr) {
			apiError(w, http.StatusUnprocessableEntity, "invalid_capabilities",
				fmt.Sprintf("the policies need PCR %d of the %s bank, which the agent does not offer", pcr, hash))
			return
		}
	}
	if a.Policies.Runtime != nil && !imaCaps {
		apiError(w, http.StatusUnprocessableEntity, "invalid_capabilities", "a runtime policy is set but the agent offers no ima_log")
		return
	}
	if a.Policies.MB != nil && !uefiCaps {
		apiError(w, http.StatusUnprocessableEntity, "invalid_capabilities", "a measured-boot policy is set but the agent offers no uefi_log")
		return
	}
	challenge := make([]byte, 16) // 128 bits, as Keylime
	if _, err := rand.Read(challenge); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", "no randomness")
		return
	}
	// A new boot (or an agent that lost its offset) starts the IMA list over.
	if st.BootTime != attrs.SystemInfo.BootTime {
		st.Session.IMA = ima.State{}
		st.IMAOffset = 0
	} else {
		st.IMAOffset = st.Session.IMA.NextEntry
	}
	st.BootTime = attrs.SystemInfo.BootTime
	st.Index++
	st.Stage = stageAwaiting
	st.Challenge = challenge
	st.HashAlg, st.SignAlg, st.Mask = hash, sign, mask
	st.WantUEFI = a.Policies.MB != nil
	st.CapabilitiesAt = now
	st.ExpiresAt = now.Add(p.opts.ChallengeTTL)
	st.EvidenceAt, st.CompletedAt, st.Evaluation, st.Failures = time.Time{}, time.Time{}, "", nil
	if err := p.commit(r.Context(), a.ID, st, nil); err != nil {
		apiError(w, http.StatusServiceUnavailable, "store_unavailable", err.Error())
		return
	}
	requested := []map[string]any{{
		"evidence_class": "certification",
		"evidence_type":  "tpm_quote",
		"chosen_parameters": map[string]any{
			"challenge":         base64.StdEncoding.EncodeToString(challenge),
			"hash_algorithm":    hash,
			"signature_scheme":  sign,
			"selected_subjects": map[string][]int{hash: pcrs},
		},
	}}
	if a.Policies.Runtime != nil {
		requested = append(requested, map[string]any{
			"evidence_class":    "log",
			"evidence_type":     "ima_log",
			"chosen_parameters": map[string]any{"starting_offset": st.IMAOffset, "format": "text/plain"},
		})
	}
	if st.WantUEFI {
		requested = append(requested, map[string]any{
			"evidence_class":    "log",
			"evidence_type":     "uefi_log",
			"chosen_parameters": map[string]any{"format": "application/octet-stream"},
		})
	}
	attrsOut, _ := json.Marshal(map[string]any{
		"stage":                    st.Stage,
		"evidence_requested":       requested,
		"system_info":              map[string]any{"boot_time": st.BootTime},
		"capabilities_received_at": st.CapabilitiesAt.UTC().Format(time.RFC3339Nano),
		"challenges_expire_at":     st.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
	self := fmt.Sprintf("/%s/agents/%s/attestations/%d", r.PathValue("ver"), a.ID, st.Index)
	w.Header().Set("Location", self)
	writeJSONAPI(w, http.StatusCreated, jsonapi{Data: &resource{Type: "attestation", ID: strconv.FormatUint(st.Index, 10), Attributes: attrsOut, Links: map[string]string{"self": self}}})
}

// --- evidence (PATCH) ---

type evidenceCollected struct {
	EvidenceClass string `json:"evidence_class"`
	EvidenceType  string `json:"evidence_type"`
	Data          struct {
		Message     string          `json:"message"`
		Signature   string          `json:"signature"`
		SubjectData json.RawMessage `json:"subject_data"`
		Entries     string          `json:"entries"`
		EntryCount  *uint64         `json:"entry_count"`
	} `json:"data"`
}

func (p *Push) update(s *Server, w http.ResponseWriter, r *http.Request) {
	a, ok := p.lookup(w, r)
	if !ok {
		return
	}
	body, ok := s.readJSONBody(w, r, jsonapiTypes...)
	if !ok {
		return
	}
	lock := p.agentLock(a.ID)
	lock.Lock()
	defer lock.Unlock()
	ctx := r.Context()
	st, err := p.load(ctx, a.ID)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	idx := r.PathValue("index")
	if st.Index == 0 {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("No attestation %s exists for agent '%s'.", idx, a.ID))
		return
	}
	if idx != "latest" && idx != strconv.FormatUint(st.Index, 10) {
		apiError(w, http.StatusForbidden, "old_attestation", fmt.Sprintf("Attestation %s is not the latest for agent '%s'. Only evidence for the most recent attestation may be updated.", idx, a.ID))
		return
	}
	if st.Stage != stageAwaiting {
		apiError(w, http.StatusForbidden, "evidence_immutable", fmt.Sprintf("Cannot alter evidence for attestation %d which has already been received and accepted.", st.Index))
		return
	}
	now := s.opts.Now()
	if !now.Before(st.ExpiresAt) {
		apiError(w, http.StatusForbidden, "challenges_expired", fmt.Sprintf("Challenges for attestation %d expired at %s. Create a new attestation and try again.", st.Index, st.ExpiresAt.UTC().Format(time.RFC3339)))
		return
	}
	var attrs struct {
		EvidenceCollected []evidenceCollected `json:"evidence_collected"`
	}
	if err := decodeAttributes(body, "attestation", &attrs); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	round := &PushRound{Agent: a.ID, Index: st.Index, Challenge: st.Challenge, HashAlg: st.HashAlg, Mask: st.Mask, IMAStart: st.IMAOffset, Start: now, Body: body}
	ev := verifier.Evidence{HashAlg: st.HashAlg, IMAStart: st.IMAOffset}
	var haveQuote bool
	for _, e := range attrs.EvidenceCollected {
		switch {
		case e.EvidenceType == "tpm_quote":
			var subj string
			if err := json.Unmarshal(e.Data.SubjectData, &subj); err != nil {
				apiError(w, http.StatusBadRequest, "invalid_evidence", "tpm_quote data.subject_data must be the base64 pcrblob")
				return
			}
			round.Quote = "r" + e.Data.Message + ":" + e.Data.Signature + ":" + subj
			ev.Quote = round.Quote
			haveQuote = true
		case e.EvidenceType == "ima_log":
			round.IMALines = e.Data.Entries
			ev.IMAList = strings.NewReader(e.Data.Entries)
		case e.EvidenceType == "uefi_log":
			b, err := base64.StdEncoding.DecodeString(e.Data.Entries)
			if err != nil {
				apiError(w, http.StatusBadRequest, "invalid_evidence", "uefi_log data.entries must be base64")
				return
			}
			round.MBLog, ev.MBLog = b, b
		}
	}
	if !haveQuote {
		apiError(w, http.StatusBadRequest, "invalid_evidence", "evidence_collected lacks the requested tpm_quote")
		return
	}
	if a.Policies.Runtime != nil && ev.IMAList == nil {
		ev.IMAList = strings.NewReader("")
	}
	res := verifier.Verify(a.AK, verifier.Challenge{Nonce: st.Challenge, Mask: st.Mask}, ev, a.Policies, st.Session, a.Options)
	round.Result = res
	round.End = s.opts.Now()
	st.Stage = stageComplete
	st.EvidenceAt = now
	st.CompletedAt = round.End
	st.Challenge = nil // single use
	st.Failures = res.Failures
	st.Session = res.Next
	if res.Verdict == failure.VerdictTrusted {
		st.Evaluation = "pass"
		st.LastTrusted = round.End
		st.ConsecutiveFails = 0
	} else {
		st.Evaluation = "fail"
		st.ConsecutiveFails++
	}
	if err := p.commit(ctx, a.ID, st, round); err != nil {
		apiError(w, http.StatusServiceUnavailable, "store_unavailable", "the round could not be recorded: "+err.Error())
		return
	}
	if p.opts.OnRound != nil {
		p.opts.OnRound(round)
	}
	s.metrics.Add("zest_push_rounds_total", 1, res.Verdict.String())
	self := fmt.Sprintf("/%s/agents/%s/attestations/%d", r.PathValue("ver"), a.ID, st.Index)
	writeJSONAPI(w, http.StatusAccepted, jsonapi{
		Data: &resource{Type: "attestation", ID: strconv.FormatUint(st.Index, 10), Attributes: p.renderState(st), Links: map[string]string{"self": self}},
		Meta: map[string]any{"seconds_to_next_attestation": int(p.opts.Interval.Seconds() + 0.999)},
	})
}

func (p *Push) renderState(st *pushState) json.RawMessage {
	out := map[string]any{
		"stage":                    st.Stage,
		"capabilities_received_at": st.CapabilitiesAt.UTC().Format(time.RFC3339Nano),
		"challenges_expire_at":     st.ExpiresAt.UTC().Format(time.RFC3339Nano),
		"system_info":              map[string]any{"boot_time": st.BootTime},
	}
	if st.Evaluation != "" {
		out["evaluation"] = st.Evaluation
		out["evidence_received_at"] = st.EvidenceAt.UTC().Format(time.RFC3339Nano)
		out["verification_completed_at"] = st.CompletedAt.UTC().Format(time.RFC3339Nano)
		out["failures"] = st.Failures.Keylime()
	}
	b, _ := json.Marshal(out)
	return b
}

func (p *Push) show(s *Server, w http.ResponseWriter, r *http.Request) {
	a, ok := p.lookup(w, r)
	if !ok {
		return
	}
	st, err := p.load(r.Context(), a.ID)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	idx := r.PathValue("index")
	if st.Index == 0 || (idx != "latest" && idx != strconv.FormatUint(st.Index, 10)) {
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("No attestation %s exists for agent '%s'.", idx, a.ID))
		return
	}
	self := fmt.Sprintf("/%s/agents/%s/attestations/%d", r.PathValue("ver"), a.ID, st.Index)
	meta := map[string]any{}
	if !st.EvidenceAt.IsZero() {
		meta["seconds_to_next_attestation"] = max(0, int(st.EvidenceAt.Add(p.opts.Interval).Sub(s.opts.Now()).Seconds()+0.999))
	}
	writeJSONAPI(w, http.StatusOK, jsonapi{Data: &resource{Type: "attestation", ID: strconv.FormatUint(st.Index, 10), Attributes: p.renderState(st), Links: map[string]string{"self": self}}, Meta: meta})
}
