// Package dsse owns the DSSE envelope exactly as Keylime's `keylime-policy
// sign runtime` writes it and its verifier checks it (keylime/dsse,
// keylime/signing.py): the PAE, the JSON layout Python's json.dumps gives,
// the ecdsa and x509 signer backends, and the re-serialisation of the policy
// that Keylime signs (PythonJSON). An RSA-PSS signer is a zest extension that
// Keylime cannot verify.
//
// Parsing an envelope does not verify it; only Verify and VerifyX509 return a
// payload that a trusted key signed. This package depends on the standard
// library only; it must not import verifier, archive or cmd, never prints and
// never exits.
package dsse

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// KeylimePayloadType is the payloadType of signed Keylime runtime policies.
const KeylimePayloadType = "application/vnd.keylime+json"

// MaxEnvelopeBytes bounds ParseEnvelope's input. A runtime policy for a whole
// distribution is tens of MiB; base64 adds a third.
const MaxEnvelopeBytes = 256 << 20

// Envelope is a DSSE envelope. Payload is the decoded payload.
type Envelope struct {
	Payload     []byte
	PayloadType string
	Signatures  []Signature
}

// Signature is one DSSE signature. KeyID is a hint only: Keylime ignores it
// when it verifies with a given key, and so does Verify.
type Signature struct {
	KeyID string
	Sig   []byte
}

// PAE is DSSE v1's pre-authentication encoding, the bytes that are signed:
// "DSSEv1" SP len(type) SP type SP len(payload) SP payload, lengths in ASCII
// decimal. Lengths are in bytes as the DSSE spec says (Keylime's Python port
// counts characters, which is the same for its ASCII payloadType).
func PAE(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(payloadType)+len(payload))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// Sign wraps payload, as given, in a Keylime-typed envelope signed by s.
func Sign(payload []byte, s Signer) (*Envelope, error) {
	if s == nil {
		return nil, errors.New("dsse: nil signer")
	}
	sig, err := s.Sign(PAE(KeylimePayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("dsse: sign: %w", err)
	}
	return &Envelope{
		Payload:     bytes.Clone(payload),
		PayloadType: KeylimePayloadType,
		Signatures:  []Signature{{KeyID: s.KeyID(), Sig: sig}},
	}, nil
}

// SignJSON signs a JSON document the way `keylime-policy sign runtime` does:
// the payload is PythonJSON(doc), not doc itself, so the envelope's payload
// equals Keylime's for the same input file. Validating the document as a
// runtime policy is the caller's job (Keylime does it before signing).
func SignJSON(doc []byte, s Signer) (*Envelope, error) {
	payload, err := PythonJSON(doc)
	if err != nil {
		return nil, err
	}
	return Sign(payload, s)
}

// MarshalKeylime encodes env byte for byte as Keylime's dsse.Sign writes it
// (Python json.dumps: `{"payload": "...", "payloadType": "...", "signatures":
// [{"keyid": "...", "sig": "..."}]}`, standard padded base64, no trailing
// newline). An empty KeyID is left out, as Keylime does.
func (env *Envelope) MarshalKeylime() []byte {
	b := make([]byte, 0, 96+base64.StdEncoding.EncodedLen(len(env.Payload)))
	b = append(b, `{"payload": "`...)
	b = base64.StdEncoding.AppendEncode(b, env.Payload)
	b = append(b, `", "payloadType": `...)
	b = appendPyString(b, env.PayloadType)
	b = append(b, `, "signatures": [`...)
	for i, s := range env.Signatures {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '{')
		if s.KeyID != "" {
			b = append(b, `"keyid": `...)
			b = appendPyString(b, s.KeyID)
			b = append(b, ", "...)
		}
		b = append(b, `"sig": "`...)
		b = base64.StdEncoding.AppendEncode(b, s.Sig)
		b = append(b, `"}`...)
	}
	return append(b, "]}"...)
}

func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		b = appendPyRune(b, r)
	}
	return append(b, '"')
}

// EnvelopeError locates a problem in an envelope document.
type EnvelopeError struct {
	Field string // "payload", "signatures[0].sig", ... or "" for the document
	Err   error
}

func (e *EnvelopeError) Error() string {
	if e.Field == "" {
		return "dsse envelope: " + e.Err.Error()
	}
	return "dsse envelope: " + e.Field + ": " + e.Err.Error()
}

func (e *EnvelopeError) Unwrap() error { return e.Err }

// ParseEnvelope reads a DSSE envelope as Keylime's dsse.Verify reads it:
// required "payload", "payloadType" and "signatures" (each with "sig" and an
// optional "keyid" string or null); other members are ignored; for a repeated
// member the last one counts. Nothing is verified.
//
// Encoding of "payload" and "sig": Keylime's b64dec tries hex first, then
// strict standard base64, then strict URL-safe base64. zest accepts standard
// or URL-safe base64 with correct '=' padding and no whitespace, the forms on
// which it and Keylime always decode the same bytes. It refuses hex, and any
// value Keylime would take for hex (non-empty, even length, only hex digits),
// rather than decode it differently from Keylime. A value with missing
// padding fails, as it does in Keylime (runtime-policy-test-signed-bad.json).
// An empty payload is refused: Keylime does not treat it as an envelope.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, &EnvelopeError{Err: fmt.Errorf("%d bytes, more than %d", len(data), MaxEnvelopeBytes)}
	}
	if !utf8.Valid(data) {
		return nil, &EnvelopeError{Err: errors.New("not UTF-8")}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, &EnvelopeError{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	var env Envelope
	payload, err := stringMember(top, "payload")
	if err != nil {
		return nil, err
	}
	if payload == "" {
		return nil, &EnvelopeError{Field: "payload", Err: errors.New("empty")}
	}
	if env.Payload, err = decodeBase64(payload); err != nil {
		return nil, &EnvelopeError{Field: "payload", Err: err}
	}
	if env.PayloadType, err = stringMember(top, "payloadType"); err != nil {
		return nil, err
	}
	raw, ok := top["signatures"]
	if !ok {
		return nil, &EnvelopeError{Field: "signatures", Err: errors.New("missing")}
	}
	var sigs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &sigs); err != nil || sigs == nil {
		return nil, &EnvelopeError{Field: "signatures", Err: errors.New("must be an array of objects")}
	}
	for i, s := range sigs {
		field := fmt.Sprintf("signatures[%d]", i)
		if s == nil {
			return nil, &EnvelopeError{Field: field, Err: errors.New("must be an object")}
		}
		b64, err := stringMember(s, "sig")
		if err != nil {
			err.(*EnvelopeError).Field = field + ".sig"
			return nil, err
		}
		var sig Signature
		if sig.Sig, err = decodeBase64(b64); err != nil {
			return nil, &EnvelopeError{Field: field + ".sig", Err: err}
		}
		if len(sig.Sig) == 0 {
			return nil, &EnvelopeError{Field: field + ".sig", Err: errors.New("empty")}
		}
		if k, ok := s["keyid"]; ok && string(bytes.TrimSpace(k)) != "null" {
			if err := json.Unmarshal(k, &sig.KeyID); err != nil {
				return nil, &EnvelopeError{Field: field + ".keyid", Err: errors.New("must be a string")}
			}
		}
		env.Signatures = append(env.Signatures, sig)
	}
	return &env, nil
}

func stringMember(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok {
		return "", &EnvelopeError{Field: name, Err: errors.New("missing")}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &EnvelopeError{Field: name, Err: errors.New("must be a string")}
	}
	return s, nil
}

// decodeBase64 implements the subset of Keylime's b64dec described at
// ParseEnvelope.
func decodeBase64(s string) ([]byte, error) {
	if len(s)%2 == 0 && s != "" && strings.IndexFunc(s, func(r rune) bool { return !isHexRune(r) }) < 0 {
		return nil, errors.New("value is hex digits only: Keylime would decode it as hex, zest requires base64")
	}
	// Go's decoders skip CR and LF; Python's validate=True does not.
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 contains a line break")
	}
	std := strings.ContainsAny(s, "+/")
	url := strings.ContainsAny(s, "-_")
	enc := base64.StdEncoding
	switch {
	case std && url:
		return nil, errors.New("base64 mixes the standard and URL-safe alphabets")
	case url:
		enc = base64.URLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		if len(s)%4 != 0 {
			return nil, fmt.Errorf("bad base64 (length %d is not a multiple of 4: missing '=' padding?)", len(s))
		}
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	return b, nil
}

func isHexRune(r rune) bool { return r < utf8.RuneSelf && isHex(byte(r)) }

// IsEnvelope reports whether data is what Keylime treats as a signed policy:
// a JSON object whose "payload" member is truthy in Python's sense (a
// non-empty string, array or object, a non-zero number, true). Unsigned
// runtime policies have no "payload" member.
func IsEnvelope(data []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	raw, ok := top["payload"]
	if !ok {
		return false
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return false
	}
	switch x := v.(type) {
	case string:
		return x != ""
	case bool:
		return x
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return err != nil || f != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return false
}
