package rpmrepo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// parseKeyring reads OpenPGP public keys, binary or ASCII-armored (one or
// more armor blocks).
func parseKeyring(b []byte) (openpgp.EntityList, error) {
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	if !bytes.Contains(b, []byte(begin)) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if len(el) == 0 {
			return nil, errors.New("no keys")
		}
		return el, nil
	}
	var el openpgp.EntityList
	for i, block := range bytes.Split(b, []byte(begin))[1:] {
		keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(append([]byte(begin), block...)))
		if err != nil {
			return nil, fmt.Errorf("armored block %d: %w", i+1, err)
		}
		el = append(el, keys...)
	}
	if len(el) == 0 {
		return nil, errors.New("no keys")
	}
	return el, nil
}

// verifyOpenPGP checks a detached signature (armored or binary) over msg
// by a key in ring, at time now (expired keys and signatures fail), and
// returns the signing key's fingerprint.
func verifyOpenPGP(msg, sig []byte, ring openpgp.EntityList, now time.Time) (string, error) {
	cfg := &packet.Config{Time: func() time.Time { return now }}
	var (
		signer *openpgp.Entity
		err    error
	)
	if bytes.Contains(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
		signer, err = openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(msg), bytes.NewReader(sig), cfg)
	} else {
		signer, err = openpgp.CheckDetachedSignature(ring, bytes.NewReader(msg), bytes.NewReader(sig), cfg)
	}
	if err != nil {
		return "", fmt.Errorf("OpenPGP signature does not verify with the given keys: %w", err)
	}
	if signer == nil || signer.PrimaryKey == nil {
		return "", errors.New("OpenPGP signature verified without a signer")
	}
	return hex.EncodeToString(signer.PrimaryKey.Fingerprint), nil
}
