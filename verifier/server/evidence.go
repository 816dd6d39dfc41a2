package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
)

// EvidenceVerifier evaluates one stateless evidence request. A returned
// error means the evidence could not be evaluated at all (HTTP 500); every
// verdict, including "error" verdicts, comes back as a result.
type EvidenceVerifier interface {
	VerifyEvidence(ctx context.Context, req *verifier.EvidenceRequest) (*EvidenceResult, error)
}

// EvidenceResult is the outcome of a /verify/evidence request.
type EvidenceResult struct {
	Verdict  failure.Verdict
	Failures failure.List
}

// evidenceResults is Keylime's results object, plus zest's verdict and
// the human sentences (extra fields Keylime clients ignore).
type evidenceResults struct {
	Valid    bool              `json:"valid"`
	Claims   map[string]any    `json:"claims"`
	Failures []failure.Keylime `json:"failures"`
	Verdict  failure.Verdict   `json:"verdict"`
	Details  []failure.Failure `json:"zest_failures,omitempty"`
}

func (s *Server) evidence(w http.ResponseWriter, r *http.Request) {
	if _, ok := apiVersion(r); !ok {
		writeError(w, http.StatusBadRequest, "API version not supported: "+r.PathValue("ver"))
		return
	}
	if s.opts.Evidence == nil {
		writeError(w, http.StatusNotImplemented, "evidence verification is not configured")
		return
	}
	body, ok := s.readJSONBody(w, r)
	if !ok {
		return
	}
	req, inputErrs, err := verifier.ParseEvidenceRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Malformed request: "+err.Error())
		return
	}
	if len(inputErrs) > 0 {
		s.writeEvidence(w, http.StatusBadRequest, "Bad Request", req, &EvidenceResult{Verdict: failure.VerdictError, Failures: inputErrs})
		return
	}
	res, err := s.opts.Evidence.VerifyEvidence(r.Context(), req)
	if err != nil {
		s.log.Error("evidence verification failed", "err", err)
		writeError(w, http.StatusInternalServerError, "evidence could not be evaluated: "+err.Error())
		return
	}
	s.metrics.Add("zest_evidence_total", 1, res.Verdict.String())
	code, status := http.StatusOK, "Success"
	for _, f := range res.Failures {
		if strings.HasSuffix(f.ID, ".missing_param") || strings.HasSuffix(f.ID, ".missing_policy") {
			code, status = http.StatusBadRequest, "Bad Request"
		}
	}
	s.writeEvidence(w, code, status, req, res)
}

func (s *Server) writeEvidence(w http.ResponseWriter, code int, status string, req *verifier.EvidenceRequest, res *EvidenceResult) {
	out := evidenceResults{
		Valid:    res.Verdict == failure.VerdictTrusted && len(res.Failures) == 0,
		Claims:   map[string]any{},
		Failures: res.Failures.Keylime(),
		Verdict:  res.Verdict,
		Details:  res.Failures,
	}
	if !out.Valid || req == nil {
		writeEnvelope(w, code, status, out)
		return
	}
	if len(req.RawData) == 0 {
		out.Claims = claimsOf(&req.Data)
		writeEnvelope(w, code, status, out)
		return
	}
	// Keylime echoes the request data as claims when there were no
	// failures. The data as received is valid JSON already; re-encoding
	// it (an IMA list and policies of megabytes) would cost as much as
	// verifying it, so it is spliced into the envelope as is.
	env, err := json.Marshal(struct {
		Code    int             `json:"code"`
		Status  string          `json:"status"`
		Results evidenceResults `json:"results"`
	}{code, status, out})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	// "valid" is a boolean and comes first, so this is the claims field.
	placeholder := []byte(`"claims":{}`)
	i := bytes.Index(env, placeholder)
	if i < 0 {
		writeError(w, http.StatusInternalServerError, "encoding the answer: no claims field")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	for _, b := range [][]byte{env[:i], []byte(`"claims":`), req.RawData, env[i+len(placeholder):], []byte("\n")} {
		if _, err := w.Write(b); err != nil {
			return
		}
	}
}

func claimsOf(d *verifier.EvidenceData) map[string]any {
	m := map[string]any{
		"quote": d.Quote, "nonce": d.Nonce, "hash_alg": d.HashAlg, "tpm_ak": d.TPMAK, "tpm_ek": d.TPMEK,
	}
	if len(d.TPMPolicy) > 0 {
		m["tpm_policy"] = d.TPMPolicy
	}
	if len(d.RuntimePolicy) > 0 {
		m["runtime_policy"] = d.RuntimePolicy
	}
	if len(d.MBPolicy) > 0 {
		m["mb_policy"] = d.MBPolicy
	}
	if d.IMAMeasurementList != "" {
		m["ima_measurement_list"] = d.IMAMeasurementList
	}
	if d.MBLog != "" {
		m["mb_log"] = d.MBLog
	}
	return m
}

// Library is the EvidenceVerifier backed by zest's verifier library.
type Library struct {
	Options verifier.EvidenceOptions
}

// VerifyEvidence implements EvidenceVerifier.
func (l Library) VerifyEvidence(ctx context.Context, req *verifier.EvidenceRequest) (*EvidenceResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := verifier.VerifyEvidence(req, l.Options)
	return &EvidenceResult{Verdict: r.Verdict, Failures: r.Failures}, nil
}
