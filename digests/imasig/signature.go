package imasig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zest-attest/zest/digests"
)

// xattr type bytes (integrity.h enum evm_ima_xattr_type) that carry a
// signature_v2_hdr and that Keylime's integrity_digsig_verify accepts.
const (
	TypeDigsig         = 0x03 // EVM_IMA_XATTR_DIGSIG
	TypePortableDigsig = 0x05 // EVM_XATTR_PORTABLE_DIGSIG
)

// HeaderSize is the fixed part of a v2 signature: type, version, hash_algo,
// keyid (u32 BE) and sig_size (u16 BE).
const HeaderSize = 9

// HashAlgo is the kernel's enum hash_algo (include/uapi/linux/hash_info.h).
type HashAlgo uint8

// The hash algorithm ids a signature header may carry.
const (
	HashMD4         HashAlgo = 0
	HashMD5         HashAlgo = 1
	HashSHA1        HashAlgo = 2
	HashRMD160      HashAlgo = 3
	HashSHA256      HashAlgo = 4
	HashSHA384      HashAlgo = 5
	HashSHA512      HashAlgo = 6
	HashSHA224      HashAlgo = 7
	HashSM3         HashAlgo = 17
	HashStreebog256 HashAlgo = 18
	HashStreebog512 HashAlgo = 19
	HashSHA3_256    HashAlgo = 20
	HashSHA3_384    HashAlgo = 21
	HashSHA3_512    HashAlgo = 22
)

// hash_algo_name[] in crypto/hash_info.c, indexed by HashAlgo.
var hashNames = [...]string{
	"md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224",
	"rmd128", "rmd256", "rmd320", "wp256", "wp384", "wp512", "tgr128", "tgr160",
	"tgr192", "sm3", "streebog256", "streebog512", "sha3-256", "sha3-384", "sha3-512",
}

func (h HashAlgo) String() string {
	if int(h) < len(hashNames) {
		return hashNames[h]
	}
	return fmt.Sprintf("hash_algo(%d)", uint8(h))
}

// Hash returns the Go hash zest verifies signatures of this algorithm with.
// These are the algorithms Keylime verifies except Streebog, which Go lacks.
func (h HashAlgo) Hash() (crypto.Hash, bool) {
	switch h {
	case HashMD5:
		return crypto.MD5, true
	case HashSHA1:
		return crypto.SHA1, true
	case HashSHA224:
		return crypto.SHA224, true
	case HashSHA256:
		return crypto.SHA256, true
	case HashSHA384:
		return crypto.SHA384, true
	case HashSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// Algorithm maps the id to the name a d-ng field and a runtime policy use, or
// "" when zest has no name for it. Keylime refuses a signature whose algorithm
// differs from the measured digest's; callers compare with this.
func (h HashAlgo) Algorithm() digests.Algorithm {
	switch h {
	case HashMD5:
		return digests.MD5
	case HashSHA1:
		return digests.SHA1
	case HashSHA256:
		return digests.SHA256
	case HashSHA384:
		return digests.SHA384
	case HashSHA512:
		return digests.SHA512
	case HashSM3:
		return digests.SM3
	}
	return ""
}

// Signature is a parsed, unverified security.ima signature (struct
// signature_v2_hdr followed by the signature).
type Signature struct {
	Type     byte // TypeDigsig or TypePortableDigsig
	Version  byte // always 2
	HashAlgo HashAlgo
	KeyID    uint32
	// Sig is PKCS#1 v1.5 for RSA keys, a DER Ecdsa-Sig-Value for ECDSA.
	Sig []byte
}

// FormatError locates a malformed signature header field.
type FormatError struct {
	Offset int
	Field  string
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("ima signature: offset %d (%s): %s", e.Offset, e.Field, e.Msg)
}

// ParseSignature parses a security.ima value (the "sig" field of an ima-sig
// record, hex-decoded). It checks what the kernel's asymmetric_verify and
// Keylime's integrity_digsig_verify check before looking for a key: type 3 or
// 5, version 2, a non-empty signature and len == 9 + sig_size. Hash ids the
// kernel does not know parse; Verify refuses them. Sig aliases b.
func ParseSignature(b []byte) (*Signature, error) {
	if len(b) == 0 {
		return nil, &FormatError{0, "type", "empty signature"}
	}
	if b[0] != TypeDigsig && b[0] != TypePortableDigsig {
		return nil, &FormatError{0, "type", fmt.Sprintf("0x%02x is not a digital signature (want 0x03 or 0x05)", b[0])}
	}
	if len(b) < 2 {
		return nil, &FormatError{1, "version", "truncated"}
	}
	if b[1] != 2 {
		return nil, &FormatError{1, "version", fmt.Sprintf("version %d not supported (want 2)", b[1])}
	}
	if len(b) < HeaderSize {
		return nil, &FormatError{len(b), "header", fmt.Sprintf("truncated: %d of %d header bytes", len(b), HeaderSize)}
	}
	size := int(binary.BigEndian.Uint16(b[7:9]))
	if size == 0 {
		return nil, &FormatError{7, "sig_size", "zero-length signature"}
	}
	if len(b)-HeaderSize != size {
		return nil, &FormatError{7, "sig_size", fmt.Sprintf("header says %d signature bytes, %d follow", size, len(b)-HeaderSize)}
	}
	return &Signature{
		Type:     b[0],
		Version:  b[1],
		HashAlgo: HashAlgo(b[2]),
		KeyID:    binary.BigEndian.Uint32(b[3:7]),
		Sig:      b[HeaderSize:],
	}, nil
}

// MarshalBinary encodes s as a security.ima value.
func (s *Signature) MarshalBinary() ([]byte, error) {
	if len(s.Sig) == 0 || len(s.Sig) > 0xffff {
		return nil, fmt.Errorf("imasig: signature of %d bytes does not fit sig_size", len(s.Sig))
	}
	b := make([]byte, HeaderSize, HeaderSize+len(s.Sig))
	b[0], b[1], b[2] = s.Type, s.Version, byte(s.HashAlgo)
	binary.BigEndian.PutUint32(b[3:7], s.KeyID)
	binary.BigEndian.PutUint16(b[7:9], uint16(len(s.Sig)))
	return append(b, s.Sig...), nil
}

// Verification outcomes. Verify wraps one of them in a *VerifyError, so
// errors.Is tells "no key" from "bad signature".
var (
	// ErrUnknownKey: no usable key in the keyring has the signature's keyid.
	ErrUnknownKey = errors.New("no key with this keyid")
	// ErrBadSignature: keys with the keyid exist and none verifies.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnsupportedHash: the header's hash algorithm cannot be verified.
	ErrUnsupportedHash = errors.New("unsupported signature hash algorithm")
	// ErrDigestSize: the file digest does not have the header algorithm's size.
	ErrDigestSize = errors.New("file digest size does not match the signature's hash algorithm")
)

// VerifyError is a signature that did not verify; Err is one of the Err*
// values above or an *UnsupportedKeyError (the only key with that keyid is
// one zest cannot use).
type VerifyError struct {
	KeyID    uint32
	HashAlgo HashAlgo
	Err      error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("ima signature (keyid 0x%08x, %s): %v", e.KeyID, e.HashAlgo, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Verify checks sig over fileDigest, the file's digest as IMA computed it with
// sig.HashAlgo (the d-ng value): RSA PKCS#1 v1.5 with the DigestInfo of that
// algorithm, or ECDSA over the digest itself, as the kernel's
// asymmetric_verify does. Every usable key carrying the keyid is tried; one
// success is enough. It returns nil or a *VerifyError.
func (r *Keyring) Verify(sig *Signature, fileDigest []byte) error {
	if sig == nil {
		return errors.New("imasig: nil signature")
	}
	fail := func(err error) error { return &VerifyError{KeyID: sig.KeyID, HashAlgo: sig.HashAlgo, Err: err} }
	h, ok := sig.HashAlgo.Hash()
	if !ok {
		return fail(ErrUnsupportedHash)
	}
	if len(fileDigest) != h.Size() {
		return fail(fmt.Errorf("%w: %d bytes, %s needs %d", ErrDigestSize, len(fileDigest), sig.HashAlgo, h.Size()))
	}
	var keys []*Key
	if r != nil {
		keys = r.Lookup(sig.KeyID)
	}
	if len(keys) == 0 {
		if r != nil {
			for i := r.search(sig.KeyID); i < len(r.entries) && r.entries[i].KeyID == sig.KeyID; i++ {
				if r.entries[i].Unsupported != nil {
					return fail(r.entries[i].Unsupported)
				}
			}
		}
		return fail(ErrUnknownKey)
	}
	for _, k := range keys {
		switch pub := k.Public.(type) {
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(pub, h, fileDigest, sig.Sig) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(pub, fileDigest, sig.Sig) {
				return nil
			}
		}
	}
	return fail(ErrBadSignature)
}
