package deb

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrSignature is wrapped by errors about a Release whose OpenPGP signature
// is missing, malformed, made by a key not in RepoOptions.Keyring, or does
// not verify.
var ErrSignature = errors.New("Release signature")

// ErrReleaseExpired is wrapped by the error about a Release whose
// Valid-Until has passed (a mirror replaying an old, signed Release).
var ErrReleaseExpired = errors.New("Release is past its Valid-Until")

// release is the part of a Release file zest uses.
type release struct {
	suite, codename string
	validUntil      time.Time // zero if absent
	sha256          map[string]releaseFile
}

type releaseFile struct {
	size int64
	sum  []byte
}

// parseRelease reads the first paragraph of a Release file: Suite,
// Codename, Valid-Until and the SHA256 section (path relative to
// dists/<suite>/ → size and hash). Field names are case-insensitive
// (deb822(5)). Errors name the line.
func parseRelease(rel []byte) (*release, error) {
	r := &release{sha256: map[string]releaseFile{}}
	field := ""
	seen := false
	for i, line := range strings.Split(string(rel), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			if seen {
				break // only the first paragraph is the Release
			}
			continue
		}
		seen = true
		if line[0] != ' ' && line[0] != '\t' {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: not a field: %q", i+1, line)
			}
			field = strings.ToLower(strings.TrimSpace(name))
			value = strings.TrimSpace(value)
			switch field {
			case "suite":
				r.suite = value
			case "codename":
				r.codename = value
			case "valid-until":
				// RFC 2822 dates in UTC, as apt writes them (apt-ftparchive).
				t, err := time.Parse(time.RFC1123Z, strings.Replace(value, "UTC", "+0000", 1))
				if err != nil {
					return nil, fmt.Errorf("line %d: Valid-Until %q: %w", i+1, value, err)
				}
				r.validUntil = t
			}
			continue
		}
		if field != "sha256" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: SHA256 entry %q: want hash, size and path", i+1, line)
		}
		sum, err := hex.DecodeString(f[0])
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("line %d: bad SHA-256 %q", i+1, f[0])
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("line %d: bad size %q", i+1, f[1])
		}
		if prev, dup := r.sha256[f[2]]; dup && (prev.size != size || !bytes.Equal(prev.sum, sum)) {
			return nil, fmt.Errorf("line %d: %s listed twice with different hashes", i+1, f[2])
		}
		r.sha256[f[2]] = releaseFile{size: size, sum: sum}
	}
	if len(r.sha256) == 0 {
		return nil, errors.New("no SHA256 section")
	}
	return r, nil
}

// check refuses a Release for another suite than the one asked for (apt
// warns; a mirror serving stable's signed Release as testing is a downgrade)
// and one whose Valid-Until has passed, unless allowExpired.
func (r *release) check(suite string, now time.Time, allowExpired bool) error {
	if (r.suite != "" || r.codename != "") && r.suite != suite && r.codename != suite {
		return fmt.Errorf("Release is for suite %q codename %q, not %q", r.suite, r.codename, suite)
	}
	if !allowExpired && !r.validUntil.IsZero() && now.After(r.validUntil) {
		return fmt.Errorf("%w (%s, now %s)", ErrReleaseExpired, r.validUntil.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// keyring parses OpenPGP public keys, binary (as in
// /usr/share/keyrings/*.gpg) or ASCII-armored, possibly several of each
// concatenated.
func parseKeyring(b []byte) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	var err error
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	if !bytes.Contains(b, []byte(begin)) {
		if el, err = openpgp.ReadKeyRing(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
	}
	// ReadArmoredKeyRing reads one armor block; a keyring file may hold
	// several, one per key.
	for i, block := range bytes.Split(b, []byte(begin))[1:] {
		keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(append([]byte(begin), block...)))
		if err != nil {
			return nil, fmt.Errorf("keyring: armored block %d: %w", i+1, err)
		}
		el = append(el, keys...)
	}
	if len(el) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	return el, nil
}

func sigConfig(now time.Time) *packet.Config {
	return &packet.Config{Time: func() time.Time { return now }}
}

// verifyInRelease checks a clearsigned InRelease (RFC 9580 §7) against the
// keyring and returns the signed text and the signer's fingerprint. As apt
// does, nothing may come before the signed message or after its signature,
// so that the text parsed is exactly the text signed.
func verifyInRelease(b []byte, kr openpgp.EntityList, now time.Time) ([]byte, string, error) {
	if !bytes.HasPrefix(b, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		return nil, "", fmt.Errorf("%w: InRelease does not start with a cleartext signature header", ErrSignature)
	}
	blk, rest := clearsign.Decode(b)
	if blk == nil {
		return nil, "", fmt.Errorf("%w: InRelease is not a well-formed cleartext-signed message", ErrSignature)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", fmt.Errorf("%w: %d bytes after the InRelease signature", ErrSignature, len(rest))
	}
	signer, err := blk.VerifySignature(kr, sigConfig(now))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return blk.Plaintext, fingerprint(signer), nil
}

// verifyDetached checks Release against Release.gpg (armored or binary).
func verifyDetached(rel, sig []byte, kr openpgp.EntityList, now time.Time) (string, error) {
	var signer *openpgp.Entity
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN PGP SIGNATURE-----")) {
		signer, err = openpgp.CheckArmoredDetachedSignature(kr, bytes.NewReader(rel), bytes.NewReader(sig), sigConfig(now))
	} else {
		signer, err = openpgp.CheckDetachedSignature(kr, bytes.NewReader(rel), bytes.NewReader(sig), sigConfig(now))
	}
	if err != nil {
		return "", fmt.Errorf("%w: Release.gpg: %w", ErrSignature, err)
	}
	return fingerprint(signer), nil
}

func fingerprint(e *openpgp.Entity) string {
	if e == nil || e.PrimaryKey == nil {
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// stripClearsign returns the text of a cleartext-signed message without
// checking the signature; it is only used with
// InsecureSkipReleaseSignature. An unsigned file is returned as is.
func stripClearsign(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		return b, nil
	}
	blk, _ := clearsign.Decode(b)
	if blk == nil {
		return nil, errors.New("InRelease is not a well-formed cleartext-signed message")
	}
	return blk.Plaintext, nil
}
