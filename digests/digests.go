// Package digests owns zest's reference-digest sources: each source reads one
// kind of untrusted input (a filesystem tree, an initrd, an IMA measurement
// list, a flat allowlist, packages, ...) and yields (path, algorithm, digest
// [, signature]) records as a stream.
//
// Sub-packages own one input format each. This package holds the shared
// vocabulary: digest algorithms and the Digest record. It must not import
// policygen, verifier or archive; it never prints and never exits.
package digests

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // IMA and Keylime still use SHA-1 banks and digests.
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// Algorithm is a digest algorithm named as Keylime and the IMA ASCII log name
// it ("sha256", not "SHA-256").
type Algorithm string

// The algorithms zest knows. SM3 digests can be carried from an IMA log or a
// policy, but zest does not compute SM3 itself.
const (
	MD5    Algorithm = "md5"
	SHA1   Algorithm = "sha1"
	SHA256 Algorithm = "sha256"
	SHA384 Algorithm = "sha384"
	SHA512 Algorithm = "sha512"
	SM3    Algorithm = "sm3_256"
)

// Algorithms lists the algorithms a runtime policy may be generated with, in
// the order Keylime documents them.
var Algorithms = []Algorithm{SHA1, SHA256, SHA384, SHA512}

// Size is the digest length in bytes, or 0 for an unknown algorithm.
func (a Algorithm) Size() int {
	switch a {
	case MD5:
		return 16
	case SHA1:
		return 20
	case SHA256, SM3:
		return 32
	case SHA384:
		return 48
	case SHA512:
		return 64
	}
	return 0
}

// New returns a fresh hash for a, or an error when zest cannot compute it.
func (a Algorithm) New() (hash.Hash, error) {
	switch a {
	case SHA1:
		return sha1.New(), nil //nolint:gosec
	case SHA256:
		return sha256.New(), nil
	case SHA384:
		return sha512.New384(), nil
	case SHA512:
		return sha512.New(), nil
	case SM3:
		return nil, fmt.Errorf("zest cannot compute %s digests (carry them from an IMA log or policy instead)", a)
	}
	return nil, fmt.Errorf("unknown digest algorithm %q", string(a))
}

// ParseAlgorithm accepts Keylime's names (case-insensitive; "sm3-256" too).
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(strings.ReplaceAll(strings.ToLower(s), "-", "_")); a {
	case MD5, SHA1, SHA256, SHA384, SHA512, SM3:
		return a, nil
	}
	return "", fmt.Errorf("unknown digest algorithm %q (want one of sha1, sha256, sha384, sha512)", s)
}

// Digest is one reference measurement: the file at Path (as IMA would name it:
// absolute, spaces written as '_') has content digest Value in Algorithm.
// Signature, when present, is the file's full security.ima value (it starts
// with 0x03 for an IMA digital signature v2).
type Digest struct {
	Path      string
	Algorithm Algorithm
	Value     []byte
	Signature []byte
}

// Source is a stream of reference digests. Walk calls yield once per digest,
// in a deterministic order when the source allows it, and stops at the first
// error yield returns. Errors name the input and the position in it.
type Source interface {
	Walk(ctx context.Context, yield func(Digest) error) error
}

// IMAPath turns a file path into the form the kernel writes in IMA's ASCII
// measurement list: spaces become '_' (ima_template_lib.c replaces them
// before the template hash is computed).
func IMAPath(p string) string {
	if strings.IndexByte(p, ' ') < 0 {
		return p
	}
	return strings.ReplaceAll(p, " ", "_")
}

// Progress receives counters from long-running sources. Implementations must
// be safe for concurrent use; nil means no reporting.
type Progress interface {
	// Add reports that files more files and bytes more bytes were hashed.
	Add(files, bytes int64)
}

// ProgressTotal is implemented by Progress values that can show an ETA: a
// source that knows how many items it will report (packages of a
// repository) announces the count before it starts.
type ProgressTotal interface {
	SetTotal(items int64)
}

// Compare orders digests by path, value, algorithm, then signature: the
// deterministic order sources sort their output in, and the equality they
// de-duplicate by.
func Compare(a, b Digest) int {
	if c := strings.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Algorithm), string(b.Algorithm)); c != 0 {
		return c
	}
	return bytes.Compare(a.Signature, b.Signature)
}
