package verifier

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PCR indices with a fixed role in Keylime: IMA extends PCR 10 and the agent
// binds its payload key into PCR 16. A TPM policy may not pin either.
const (
	IMAPCR  = 10
	DataPCR = 16
)

// maxTPMPolicy bounds a tpm_policy document; real ones are a few hundred bytes.
const maxTPMPolicy = 1 << 20

// TPMPolicy is Keylime's tpm_policy: for some PCRs, the list of values the
// quoted PCR may have, plus the mask of PCRs to request.
type TPMPolicy struct {
	// Mask is the set of PCRs to request (bit n = PCR n). It always includes
	// every PCR that has allowed values.
	Mask uint32
	// Allowed maps a PCR index to its allowed values (raw bytes).
	Allowed map[int][][]byte
}

// ParseTPMPolicy parses a tpm_policy: a JSON object, or a JSON string that
// holds one (Keylime's /verify/evidence sends it double-encoded). Keys are
// PCR numbers (decimal) with a list of hex values, and an optional "mask"
// (hex, "0x" optional). Unknown keys, PCR 10 and PCR 16, malformed hex and
// PCRs ≥ 24 are errors.
func ParseTPMPolicy(data []byte) (*TPMPolicy, error) {
	if len(data) > maxTPMPolicy {
		return nil, fmt.Errorf("tpm_policy: %d bytes exceeds the %d-byte limit", len(data), maxTPMPolicy)
	}
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var inner string
		if err := json.Unmarshal(data, &inner); err != nil {
			return nil, fmt.Errorf("tpm_policy: %w", err)
		}
		data = []byte(inner)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("tpm_policy: not a JSON object: %w", err)
	}
	p := &TPMPolicy{Allowed: map[int][][]byte{}}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		if k == "mask" {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("tpm_policy: mask: want a hex string: %w", err)
			}
			m, err := ParseMask(s)
			if err != nil {
				return nil, fmt.Errorf("tpm_policy: %w", err)
			}
			p.Mask |= m
			continue
		}
		pcr, err := strconv.Atoi(k)
		if err != nil || pcr < 0 || pcr > 23 || strconv.Itoa(pcr) != k {
			return nil, fmt.Errorf("tpm_policy: key %q: want \"mask\" or a PCR number 0-23", k)
		}
		if pcr == IMAPCR || pcr == DataPCR {
			return nil, fmt.Errorf("tpm_policy: PCR %d is reserved (10 = IMA, 16 = agent key binding) and cannot be pinned", pcr)
		}
		var vals []string
		if err := json.Unmarshal(v, &vals); err != nil {
			// Keylime also accepts a single string.
			var one string
			if json.Unmarshal(v, &one) != nil {
				return nil, fmt.Errorf("tpm_policy: PCR %d: want a list of hex strings", pcr)
			}
			vals = []string{one}
		}
		for i, s := range vals {
			b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(s), "0x"))
			if err != nil || !validDigestLen(len(b)) {
				return nil, fmt.Errorf("tpm_policy: PCR %d value %d: %q is not a SHA-1/256/384/512 hex digest", pcr, i, s)
			}
			p.Allowed[pcr] = append(p.Allowed[pcr], b)
		}
		p.Mask |= 1 << pcr
	}
	return p, nil
}

func validDigestLen(n int) bool { return n == 20 || n == 32 || n == 48 || n == 64 }

// ParseMask parses a PCR mask the way the Keylime agent does: hex with an
// optional 0x prefix, bit n = PCR n, PCRs 0-23 only.
func ParseMask(s string) (uint32, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if t == "" || len(t) > 8 {
		return 0, fmt.Errorf("mask %q: want hex digits", s)
	}
	m, err := strconv.ParseUint(t, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("mask %q: want hex digits", s)
	}
	if m>>24 != 0 {
		return 0, fmt.Errorf("mask %q selects PCRs above 23", s)
	}
	return uint32(m), nil
}

// MaskPCRs lists the PCRs a mask selects, ascending.
func MaskPCRs(m uint32) []int {
	var out []int
	for i := 0; i < 24; i++ {
		if m&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// FormatMask renders a mask as Keylime does ("0x10401").
func FormatMask(m uint32) string { return "0x" + strconv.FormatUint(uint64(m), 16) }
