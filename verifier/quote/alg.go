package quote

import (
	"crypto"
	"fmt"
	"strings"
)

// Alg is a TPM_ALG_ID (TPM 2.0 Part 2, table "TPM_ALG_ID").
type Alg uint16

// Algorithm identifiers a quote or an AK public area can carry.
const (
	AlgRSA       Alg = 0x0001
	AlgSHA1      Alg = 0x0004
	AlgHMAC      Alg = 0x0005
	AlgAES       Alg = 0x0006
	AlgSHA256    Alg = 0x000B
	AlgSHA384    Alg = 0x000C
	AlgSHA512    Alg = 0x000D
	AlgNull      Alg = 0x0010
	AlgSM3       Alg = 0x0012
	AlgRSASSA    Alg = 0x0014
	AlgRSAPSS    Alg = 0x0016
	AlgECDSA     Alg = 0x0018
	AlgECDAA     Alg = 0x001A
	AlgSM2       Alg = 0x001B
	AlgECSchnorr Alg = 0x001C
	AlgECC       Alg = 0x0023
)

// Names as Keylime spells them in hash_alg / sign_alg / enc_alg.
var algNames = map[Alg]string{
	AlgRSA: "rsa", AlgSHA1: "sha1", AlgHMAC: "hmac", AlgAES: "aes",
	AlgSHA256: "sha256", AlgSHA384: "sha384", AlgSHA512: "sha512",
	AlgNull: "null", AlgSM3: "sm3_256", AlgRSASSA: "rsassa",
	AlgRSAPSS: "rsapss", AlgECDSA: "ecdsa", AlgECDAA: "ecdaa",
	AlgSM2: "sm2", AlgECSchnorr: "ecschnorr", AlgECC: "ecc",
}

// String is Keylime's name for the algorithm ("sha256", "rsassa", ...) or
// "0x%04x" for identifiers zest does not know.
func (a Alg) String() string {
	if n, ok := algNames[a]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", uint16(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Alg) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Alg) UnmarshalText(b []byte) error {
	v, err := ParseAlg(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAlg parses a Keylime algorithm name ("sha256", "rsassa", "ecc", ...),
// case-insensitively.
func ParseAlg(name string) (Alg, error) {
	n := strings.ToLower(name)
	for a, s := range algNames {
		if s == n {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown TPM algorithm %q", name)
}

// Hash is the Go hash for a TPM hash algorithm; ok is false for non-hash
// algorithms and for SM3, which Go does not implement.
func (a Alg) Hash() (h crypto.Hash, ok bool) {
	switch a {
	case AlgSHA1:
		return crypto.SHA1, true
	case AlgSHA256:
		return crypto.SHA256, true
	case AlgSHA384:
		return crypto.SHA384, true
	case AlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// DigestSize is the digest length of a hash algorithm (SM3 included), 0 for
// anything else.
func (a Alg) DigestSize() int {
	switch a {
	case AlgSHA1:
		return 20
	case AlgSHA256, AlgSM3:
		return 32
	case AlgSHA384:
		return 48
	case AlgSHA512:
		return 64
	}
	return 0
}

// digest hashes the concatenation of parts with a (which must be a Go hash).
func digest(a Alg, parts ...[]byte) []byte {
	h, _ := a.Hash()
	w := h.New()
	for _, p := range parts {
		w.Write(p)
	}
	return w.Sum(nil)
}
