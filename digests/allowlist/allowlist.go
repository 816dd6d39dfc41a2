// Package allowlist owns Keylime's flat allowlist format: one
// "<hex digest><whitespace><path>" per line, as sha256sum writes it, with
// "%keyring:<name>" paths for keyring entries.
//
// Unlike Keylime, '#' starts a comment (Keylime turns "# foo" into a digest
// "#" for path "foo", which then fails its own schema: defect D6), and
// sha256sum's binary-mode marker ("<hex> *path") and escaped names ("\<hex>
// path\nwith newline") are understood. This package must not import
// policygen, verifier or archive.
package allowlist

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// MaxLineBytes bounds one allowlist line.
const MaxLineBytes = 64 << 10

// KeyringPrefix marks a keyring entry in a flat allowlist (Keylime's
// converter puts these into the policy's keyrings map).
const KeyringPrefix = "%keyring:"

// Entry is one allowlist line.
type Entry struct {
	Line    int
	Path    string // IMA form: spaces written as '_'; empty for keyring entries
	Keyring string // set for "%keyring:<name>" lines
	Value   []byte // the digest
}

// Algorithm guesses the digest algorithm from its length, as Keylime does;
// 32 bytes is sha256 or sm3_256 and reported as sha256 with ambiguous=true.
func (e *Entry) Algorithm() (alg digests.Algorithm, ambiguous bool, err error) {
	return GuessAlgorithm(len(e.Value))
}

// GuessAlgorithm maps a digest length in bytes to an algorithm.
func GuessAlgorithm(n int) (digests.Algorithm, bool, error) {
	switch n {
	case 20:
		return digests.SHA1, false, nil
	case 32:
		return digests.SHA256, true, nil
	case 48:
		return digests.SHA384, false, nil
	case 64:
		return digests.SHA512, false, nil
	}
	return "", false, fmt.Errorf("a %d-character digest matches no supported algorithm (sha1 40, sha256 64, sha384 96, sha512 128)", 2*n)
}

// Error locates a malformed line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Reader reads a flat allowlist.
type Reader struct {
	s    *bufio.Scanner
	name string
	line int
	e    Entry
}

// NewReader reads r; name appears in errors.
func NewReader(r io.Reader, name string) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	return &Reader{s: s, name: name}
}

// Next returns the next entry or io.EOF. The Entry is reused by the next call.
func (r *Reader) Next() (*Entry, error) {
	for r.s.Scan() {
		r.line++
		line := bytes.TrimSpace(r.s.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if err := r.parse(line); err != nil {
			return nil, &Error{File: r.name, Line: r.line, Msg: err.Error()}
		}
		return &r.e, nil
	}
	if err := r.s.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, &Error{File: r.name, Line: r.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		}
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	return nil, io.EOF
}

func (r *Reader) parse(line []byte) error {
	escaped := false
	if line[0] == '\\' { // sha256sum escapes names containing '\\' or newlines
		escaped = true
		line = line[1:]
	}
	i := bytes.IndexAny(line, " \t")
	if i < 0 {
		return fmt.Errorf("expected \"<hex digest> <path>\", got %q", clip(line))
	}
	hexd := line[:i]
	path := bytes.TrimLeft(line[i:], " \t")
	if len(path) > 0 && path[0] == '*' && i+1 < len(line) && line[i+1] == '*' {
		path = path[1:] // "<hex> *path": sha256sum binary mode
	}
	if len(path) == 0 {
		return fmt.Errorf("digest %q has no path", clip(hexd))
	}
	v := make([]byte, hex.DecodedLen(len(hexd)))
	if _, err := hex.Decode(v, hexd); err != nil || len(hexd)%2 != 0 {
		return fmt.Errorf("digest %q is not a hex string", clip(hexd))
	}
	if _, _, err := GuessAlgorithm(len(v)); err != nil {
		return err
	}
	p := string(path)
	if escaped {
		p = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r").Replace(p)
	}
	r.e = Entry{Line: r.line, Value: v}
	if name, ok := strings.CutPrefix(p, KeyringPrefix); ok {
		if name == "" {
			return fmt.Errorf("%q has no keyring name", KeyringPrefix)
		}
		r.e.Keyring = name
		return nil
	}
	r.e.Path = digests.IMAPath(p)
	return nil
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:61]) + "..."
	}
	return string(b)
}
