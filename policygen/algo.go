package policygen

import (
	"fmt"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/allowlist"
)

// algHint is what one input says about the digest algorithm.
type algHint struct {
	source string
	algs   map[digests.Algorithm]bool
	// ambiguous: only 64-hex digests seen in a file that names no algorithm
	// (base policy, flat allowlist): sha256 or sm3_256.
	ambiguous bool
}

func (h *algHint) add(a digests.Algorithm) {
	if h.algs == nil {
		h.algs = map[digests.Algorithm]bool{}
	}
	h.algs[a] = true
}

// single returns the one algorithm the input uses, or "" when it uses none
// or several (a merged policy may mix them; it then constrains nothing).
func (h *algHint) single() digests.Algorithm {
	if len(h.algs) != 1 {
		return ""
	}
	for a := range h.algs {
		return a
	}
	return ""
}

func hintFromMap(source string, m map[string][]string) (*algHint, error) {
	h := &algHint{source: source, ambiguous: true}
	for path, list := range m {
		if path == "boot_aggregate" { // its algorithm follows the TPM bank, not the file digests
			continue
		}
		for _, d := range list {
			a, amb, err := allowlist.GuessAlgorithm(len(d) / 2)
			if err != nil || len(d)%2 != 0 {
				return nil, fmt.Errorf("%s: digest %s of %q: %d hex digits match no supported algorithm (sha1 40, sha256 64, sha384 96, sha512 128)", source, clipHex(d), path, len(d))
			}
			h.add(a)
			h.ambiguous = h.ambiguous && amb
		}
	}
	if len(h.algs) == 0 {
		h.ambiguous = false
	}
	return h, nil
}

func clipHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

func compatible(chosen digests.Algorithm, h *algHint) bool {
	a := h.single()
	if a == "" || a == chosen {
		return true
	}
	// A 64-hex digest from a file without prefixes may be sm3_256 (fixes
	// Keylime's D2, where --algo sha256 plus a sha256 allowlist aborted).
	return h.ambiguous && a == digests.SHA256 && chosen == digests.SM3
}

// resolveAlgorithm picks the digest algorithm for hashing sources: an
// explicit choice wins, else the first input (in Keylime's priority order:
// base policy, allowlists, IMA logs) that uses one algorithm; a 64-hex
// ambiguity resolves to sha256 unless an IMA log says sm3. Inputs that use
// a single, different algorithm abort generation, as in Keylime, because the
// resulting policy would mix algorithms for the same files.
func resolveAlgorithm(explicit digests.Algorithm, hints []*algHint) (digests.Algorithm, string, error) {
	chosen, why := explicit, "--algo"
	var from *algHint
	if chosen == "" {
		for _, h := range hints {
			if a := h.single(); a != "" && !h.ambiguous {
				chosen, why, from = a, h.source, h
				break
			}
		}
	}
	if chosen == "" {
		for _, h := range hints {
			if a := h.single(); a != "" {
				chosen, why, from = a, h.source+" (64 hex digits: taken as sha256)", h
				break
			}
		}
	}
	if chosen == "" {
		chosen, why = digests.SHA256, "default"
	}
	for _, h := range hints {
		if h == from {
			continue
		}
		if !compatible(chosen, h) {
			return "", "", fmt.Errorf("digest algorithm conflict: %s has %s digests but %s selected %s; generate each algorithm separately and combine them with \"zest policy merge\"",
				h.source, h.single(), why, chosen)
		}
	}
	return chosen, why, nil
}
