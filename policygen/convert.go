package policygen

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/zest-attest/zest/digests/allowlist"
)

// InputKind names what Convert recognised.
type InputKind string

// Inputs Convert understands.
const (
	KindFlatAllowlist  InputKind = "flat allowlist"
	KindJSONAllowlist  InputKind = "legacy JSON allowlist"
	KindVerifierRecord InputKind = "legacy verifier record (allowlist + exclude)"
	KindOldPolicy      InputKind = "runtime policy older than version 1"
	KindCurrentPolicy  InputKind = "runtime policy version 1"
)

// Convert turns Keylime's older formats into a current runtime policy:
// the JSON allowlist ({"hashes": ...}), the old verifier record
// ({"allowlist": {...}, "exclude": [...]}), policies with meta.version < 1,
// and flat allowlists ("<hex>  <path>" lines; "%keyring:<name>" lines go to
// keyrings). Unlike keylime_convert_runtime_policy, the result is validated
// and a current policy is accepted (and normalised) instead of crashing.
func Convert(data []byte, name string) (*RuntimePolicy, InputKind, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		p := NewRuntimePolicy()
		r := allowlist.NewReader(bytes.NewReader(data), name)
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, KindFlatAllowlist, err
			}
			if e.Keyring != "" {
				addDigest(p.Keyrings, e.Keyring, hex.EncodeToString(e.Value))
			} else {
				addDigest(p.Digests, e.Path, hex.EncodeToString(e.Value))
			}
		}
		p.Normalize()
		return p, KindFlatAllowlist, nil
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, "", fmt.Errorf("%s: not JSON: %w", name, err)
	}
	switch {
	case top["allowlist"] != nil:
		var rec struct {
			Allowlist json.RawMessage `json:"allowlist"`
			Exclude   []string        `json:"exclude"`
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, KindVerifierRecord, fmt.Errorf("%s: %w", name, err)
		}
		p, err := fromLegacy(rec.Allowlist, name)
		if err != nil {
			return nil, KindVerifierRecord, err
		}
		p.Excludes = append(p.Excludes, rec.Exclude...)
		return finish(p, KindVerifierRecord, name)
	case top["hashes"] != nil:
		p, err := fromLegacy(data, name)
		if err != nil {
			return nil, KindJSONAllowlist, err
		}
		return finish(p, KindJSONAllowlist, name)
	case top["digests"] != nil:
		var meta struct {
			Meta *struct {
				Version *int64 `json:"version"`
			} `json:"meta"`
		}
		_ = json.Unmarshal(data, &meta)
		if meta.Meta != nil && meta.Meta.Version != nil && *meta.Meta.Version >= 1 {
			p, err := ParseRuntimePolicy(data, name)
			if err != nil {
				return nil, KindCurrentPolicy, err
			}
			p.Normalize()
			return p, KindCurrentPolicy, nil
		}
		p, err := fromLegacy(data, name)
		if err != nil {
			return nil, KindOldPolicy, err
		}
		p.Meta.Generator = GeneratorCompatible // as Keylime's converter marks upgrades
		return finish(p, KindOldPolicy, name)
	}
	return nil, "", fmt.Errorf("%s: not a Keylime allowlist or policy (no \"hashes\", \"digests\" or \"allowlist\" key)", name)
}

// fromLegacy copies the fields older formats share with the current one.
func fromLegacy(data []byte, name string) (*RuntimePolicy, error) {
	var old struct {
		Release  *int64              `json:"release"`
		Hashes   map[string][]string `json:"hashes"`
		Digests  map[string][]string `json:"digests"`
		Exclude  []string            `json:"exclude"`
		Excludes []string            `json:"excludes"`
		Keyrings map[string][]string `json:"keyrings"`
		IMA      *struct {
			IgnoredKeyrings []string        `json:"ignored_keyrings"`
			LogHashAlg      string          `json:"log_hash_alg"`
			DMPolicy        json.RawMessage `json:"dm_policy"`
		} `json:"ima"`
		IMABuf           map[string][]string `json:"ima-buf"`
		VerificationKeys string              `json:"verification-keys"`
	}
	if err := json.Unmarshal(data, &old); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := NewRuntimePolicy()
	if old.Release != nil {
		p.Release = *old.Release
	}
	addAll(p.Digests, old.Hashes)
	addAll(p.Digests, old.Digests)
	addAll(p.Keyrings, old.Keyrings)
	addAll(p.IMABuf, old.IMABuf)
	p.Excludes = append(append(p.Excludes, old.Exclude...), old.Excludes...)
	if old.IMA != nil {
		p.IMA.IgnoredKeyrings = old.IMA.IgnoredKeyrings
		if old.IMA.LogHashAlg != "" {
			p.IMA.LogHashAlg = old.IMA.LogHashAlg
		}
		if len(old.IMA.DMPolicy) > 0 && string(old.IMA.DMPolicy) != "null" {
			return nil, fmt.Errorf("%s: ima.dm_policy is set, but Keylime's schema only accepts null", name)
		}
	}
	p.VerificationKeys = old.VerificationKeys
	return p, nil
}

func finish(p *RuntimePolicy, kind InputKind, name string) (*RuntimePolicy, InputKind, error) {
	p.Normalize()
	out, err := p.Marshal(FormatKeylime)
	if err != nil {
		return nil, kind, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := ParseRuntimePolicy(out, name+" (converted)"); err != nil {
		return nil, kind, err
	}
	return p, kind, nil
}
