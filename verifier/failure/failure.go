// Package failure is the vocabulary every zest verifier component reports in:
// a Failure names why evidence was rejected (or why it could not be
// evaluated) with a Keylime-compatible event id, a context object for
// machines and one sentence for humans.
//
// Event ids are kept verbatim from Keylime (including its misspelling
// "qoute_validation") so that severity policies written for Keylime keep
// working against zest.
package failure

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Kind tells a rejection from an inability to evaluate.
type Kind uint8

const (
	// Reject: the evidence was evaluated and does not satisfy the policy.
	Reject Kind = iota
	// Error: the evidence could not be evaluated (malformed input, missing
	// policy, internal limit). An Error is never a pass.
	Error
)

func (k Kind) String() string {
	if k == Error {
		return "error"
	}
	return "reject"
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "reject", "":
		*k = Reject
	case "error":
		*k = Error
	default:
		return fmt.Errorf("unknown failure kind %q", b)
	}
	return nil
}

// Failure is one reason evidence was not accepted.
type Failure struct {
	// ID is the Keylime-style event id, e.g.
	// "ima.validation.ima-ng.not_in_allowlist" or "pcr_validation.invalid_pcr_10".
	ID string `json:"type"`
	// Kind is Reject or Error.
	Kind Kind `json:"kind"`
	// Message is one human sentence.
	Message string `json:"message"`
	// Context carries machine-readable details (PCR index, expected and
	// got values, path, event index, ...). Values must be JSON-encodable.
	Context map[string]any `json:"context,omitempty"`
}

// Rejectf builds a Reject failure.
func Rejectf(id string, ctx map[string]any, format string, args ...any) Failure {
	return Failure{ID: id, Kind: Reject, Message: fmt.Sprintf(format, args...), Context: ctx}
}

// Errorf builds an Error failure (could not evaluate).
func Errorf(id string, ctx map[string]any, format string, args ...any) Failure {
	return Failure{ID: id, Kind: Error, Message: fmt.Sprintf(format, args...), Context: ctx}
}

func (f Failure) String() string {
	return f.ID + ": " + f.Message
}

// Component is the first dot-separated part of the event id ("ima",
// "pcr_validation", "measured_boot", "qoute_validation", ...).
func (f Failure) Component() string {
	c, _, _ := strings.Cut(f.ID, ".")
	return c
}

// KeylimeContext is the context object Keylime puts in a failure: the
// Context with the human sentence under "message".
func (f Failure) KeylimeContext() map[string]any {
	m := make(map[string]any, len(f.Context)+1)
	for k, v := range f.Context {
		m[k] = v
	}
	if _, ok := m["message"]; !ok {
		m["message"] = f.Message
	}
	return m
}

// List collects failures in the order they were found.
type List []Failure

// Add appends failures.
func (l *List) Add(f ...Failure) { *l = append(*l, f...) }

// Rejectf appends a Reject failure.
func (l *List) Rejectf(id string, ctx map[string]any, format string, args ...any) {
	l.Add(Rejectf(id, ctx, format, args...))
}

// Errorf appends an Error failure.
func (l *List) Errorf(id string, ctx map[string]any, format string, args ...any) {
	l.Add(Errorf(id, ctx, format, args...))
}

// HasError reports whether any failure is an Error.
func (l List) HasError() bool {
	for _, f := range l {
		if f.Kind == Error {
			return true
		}
	}
	return false
}

// IDs returns the event ids in order.
func (l List) IDs() []string {
	ids := make([]string, len(l))
	for i, f := range l {
		ids[i] = f.ID
	}
	return ids
}

// Verdict is the outcome of evaluating evidence.
type Verdict uint8

const (
	// VerdictError: something could not be evaluated. Zero value, so a
	// forgotten assignment never reads as a pass.
	VerdictError Verdict = iota
	// VerdictRejected: evaluated, and at least one check failed.
	VerdictRejected
	// VerdictTrusted: evaluated, and every check passed.
	VerdictTrusted
)

func (v Verdict) String() string {
	switch v {
	case VerdictTrusted:
		return "trusted"
	case VerdictRejected:
		return "rejected"
	default:
		return "error"
	}
}

// MarshalText implements encoding.TextMarshaler.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verdict) UnmarshalText(b []byte) error {
	switch string(b) {
	case "trusted":
		*v = VerdictTrusted
	case "rejected":
		*v = VerdictRejected
	case "error":
		*v = VerdictError
	default:
		return fmt.Errorf("unknown verdict %q", b)
	}
	return nil
}

// Verdict derives the verdict of a completed evaluation: error if any
// failure is an Error, rejected if there is any failure, else trusted.
// Callers that did not complete the evaluation must not call it.
func (l List) Verdict() Verdict {
	switch {
	case l.HasError():
		return VerdictError
	case len(l) > 0:
		return VerdictRejected
	default:
		return VerdictTrusted
	}
}

// Keylime is the failure shape of Keylime's /verify/evidence response.
type Keylime struct {
	Type    string         `json:"type"`
	Context map[string]any `json:"context"`
}

// Keylime converts the list to Keylime's response shape.
func (l List) Keylime() []Keylime {
	out := make([]Keylime, len(l))
	for i, f := range l {
		out[i] = Keylime{Type: f.ID, Context: f.KeylimeContext()}
	}
	return out
}

// MarshalJSON encodes an empty or nil list as [] so JSON shapes stay stable.
func (l List) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Failure(l))
}
