package quote

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
)

// TPMA_OBJECT bits an attestation key must (or must not) have.
const (
	AttrFixedTPM            uint32 = 0x00000002
	AttrFixedParent         uint32 = 0x00000010
	AttrSensitiveDataOrigin uint32 = 0x00000020
	AttrUserWithAuth        uint32 = 0x00000040
	AttrRestricted          uint32 = 0x00010000
	AttrDecrypt             uint32 = 0x00020000
	AttrSign                uint32 = 0x00040000

	// AKRequiredAttrs: a key the TPM will only let sign TPM-generated
	// structures (restricted|sign) and that cannot leave it
	// (fixedTPM|fixedParent|sensitiveDataOrigin) — go-attestation's
	// CheckAKParameters; Keylime defines AK_EXPECTED_ATTRS but never checks it.
	AKRequiredAttrs = AttrFixedTPM | AttrFixedParent | AttrSensitiveDataOrigin | AttrRestricted | AttrSign
)

// TPM_ECC_CURVE identifiers.
const (
	CurveP256 uint16 = 0x0003
	CurveP384 uint16 = 0x0004
	CurveP521 uint16 = 0x0005
)

// maxPublic bounds a TPM2B_PUBLIC (TPMT_PUBLIC is well under 1 KB).
const maxPublic = 1024

// AK is an attestation public key. Key is *rsa.PublicKey or
// *ecdsa.PublicKey. When it came from a TPM public area, TPMPublic holds
// the marshalled TPMT_PUBLIC and the attribute fields are set; a PEM/DER
// key carries none of them.
type AK struct {
	Key crypto.PublicKey

	TPMPublic  []byte // TPMT_PUBLIC (no size prefix); nil for PEM/DER keys
	NameAlg    Alg
	Attributes uint32
	Scheme     Alg // the key's signing scheme (AlgNull: any)
	SchemeHash Alg
}

// ParseAK parses an attestation key from a TPM2B_PUBLIC (as in the
// registrar's aik_tpm, base64-decoded), a bare TPMT_PUBLIC, a PEM
// "PUBLIC KEY" block or DER SubjectPublicKeyInfo. RSA and ECC P-256,
// P-384 and P-521 keys are accepted.
func ParseAK(b []byte) (*AK, error) {
	trimmed := bytes.TrimSpace(b)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		blk, rest := pem.Decode(trimmed)
		if blk == nil {
			return nil, &ParseError{Part: PartAK, Msg: "invalid PEM"}
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, &ParseError{Part: PartAK, Msg: fmt.Sprintf("PEM block %q, want PUBLIC KEY", blk.Type)}
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, &ParseError{Part: PartAK, Msg: "data after the PEM block"}
		}
		return parseSPKI(blk.Bytes)
	}
	if len(b) >= 2 && int(binary.BigEndian.Uint16(b)) == len(b)-2 {
		return ParseTPMPublic(b[2:])
	}
	if len(b) > 0 && b[0] == 0x30 {
		return parseSPKI(b)
	}
	return ParseTPMPublic(b)
}

func parseSPKI(der []byte) (*AK, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, &ParseError{Part: PartAK, Field: "SubjectPublicKeyInfo", Msg: err.Error()}
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		return &AK{Key: k}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return &AK{Key: k}, nil
		}
		return nil, &ParseError{Part: PartAK, Msg: fmt.Sprintf("unsupported curve %s", k.Curve.Params().Name)}
	}
	return nil, &ParseError{Part: PartAK, Msg: fmt.Sprintf("unsupported key type %T", k)}
}

// ParseTPMPublic parses a TPMT_PUBLIC (no TPM2B size prefix).
func ParseTPMPublic(b []byte) (*AK, error) {
	if len(b) > maxPublic {
		return nil, &ParseError{Part: PartAK, Msg: fmt.Sprintf("%d bytes, longer than %d", len(b), maxPublic)}
	}
	r := &reader{b: b, part: PartAK}
	ak := &AK{TPMPublic: append([]byte(nil), b...)}
	typ := Alg(r.u16("type"))
	ak.NameAlg = Alg(r.u16("nameAlg"))
	ak.Attributes = r.u32("objectAttributes")
	r.tpm2b("authPolicy", maxDigest)
	if r.err == nil && ak.NameAlg.DigestSize() == 0 {
		r.off = 2
		r.fail("nameAlg", "not a hash algorithm: %v", ak.NameAlg)
	}
	// TPMT_SYM_DEF_OBJECT
	if sym := Alg(r.u16("parameters.symmetric.algorithm")); sym != AlgNull {
		r.u16("parameters.symmetric.keyBits")
		r.u16("parameters.symmetric.mode")
	}
	ak.Scheme = Alg(r.u16("parameters.scheme.scheme"))
	if ak.Scheme != AlgNull {
		ak.SchemeHash = Alg(r.u16("parameters.scheme.details.hashAlg"))
	}
	switch typ {
	case AlgRSA:
		keyBits := int(r.u16("parameters.keyBits"))
		exp := r.u32("parameters.exponent")
		mod := r.tpm2b("unique.rsa", maxRSASig)
		r.end()
		if r.err != nil {
			return nil, r.err
		}
		if exp == 0 {
			exp = 65537
		}
		n := new(big.Int).SetBytes(mod)
		if n.BitLen() != keyBits || keyBits < 1024 {
			return nil, &ParseError{Part: PartAK, Field: "unique.rsa", Msg: fmt.Sprintf("%d-bit modulus for keyBits %d", n.BitLen(), keyBits)}
		}
		if exp > 1<<31-1 || exp%2 == 0 || exp < 3 {
			return nil, &ParseError{Part: PartAK, Field: "parameters.exponent", Msg: fmt.Sprintf("invalid exponent %d", exp)}
		}
		ak.Key = &rsa.PublicKey{N: n, E: int(exp)}
	case AlgECC:
		curveID := r.u16("parameters.curveID")
		if kdf := Alg(r.u16("parameters.kdf.scheme")); kdf != AlgNull {
			r.u16("parameters.kdf.details.hashAlg")
		}
		x := r.tpm2b("unique.ecc.x", maxECCParam)
		y := r.tpm2b("unique.ecc.y", maxECCParam)
		r.end()
		if r.err != nil {
			return nil, r.err
		}
		var curve elliptic.Curve
		switch curveID {
		case CurveP256:
			curve = elliptic.P256()
		case CurveP384:
			curve = elliptic.P384()
		case CurveP521:
			curve = elliptic.P521()
		default:
			return nil, &ParseError{Part: PartAK, Field: "parameters.curveID", Msg: fmt.Sprintf("unsupported curve 0x%04x", curveID)}
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) > size || len(y) > size {
			return nil, &ParseError{Part: PartAK, Field: "unique.ecc", Msg: "coordinate longer than the curve size"}
		}
		pt := make([]byte, 1+2*size)
		pt[0] = 4
		copy(pt[1+size-len(x):1+size], x)
		copy(pt[1+2*size-len(y):], y)
		k, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return nil, &ParseError{Part: PartAK, Field: "unique.ecc", Msg: err.Error()}
		}
		ak.Key = k
	default:
		if r.err != nil {
			return nil, r.err
		}
		return nil, &ParseError{Part: PartAK, Field: "type", Msg: fmt.Sprintf("unsupported key type %v", typ)}
	}
	return ak, nil
}

// Name is the TPM Name of the AK: nameAlg || H_nameAlg(TPMT_PUBLIC). It is
// what MakeCredential binds; TPMS_ATTEST.qualifiedSigner carries the
// Qualified Name instead. Keys without a TPM public area have no Name.
func (ak *AK) Name() ([]byte, error) {
	if ak.TPMPublic == nil {
		return nil, fmt.Errorf("AK has no TPM public area (PEM/DER key): no TPM Name")
	}
	if _, ok := ak.NameAlg.Hash(); !ok {
		return nil, fmt.Errorf("AK nameAlg %v is not supported", ak.NameAlg)
	}
	name := binary.BigEndian.AppendUint16(nil, uint16(ak.NameAlg))
	return append(name, digest(ak.NameAlg, ak.TPMPublic)...), nil
}

// CheckAttributes reports whether the AK's TPM attributes make it an
// attestation key: AKRequiredAttrs set and decrypt clear. PEM/DER keys
// carry no attributes and pass.
func (ak *AK) CheckAttributes() error {
	if ak.TPMPublic == nil {
		return nil
	}
	if missing := AKRequiredAttrs &^ ak.Attributes; missing != 0 {
		return fmt.Errorf("AK objectAttributes 0x%08x lack 0x%08x (restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin required)", ak.Attributes, missing)
	}
	if ak.Attributes&AttrDecrypt != 0 {
		return fmt.Errorf("AK objectAttributes 0x%08x include decrypt", ak.Attributes)
	}
	return nil
}

// TPM hierarchy handles: the Qualified Name of a primary key's parent.
const (
	RHOwner       uint32 = 0x40000001
	RHEndorsement uint32 = 0x4000000B
	RHPlatform    uint32 = 0x4000000C
)

// HierarchyQN is the Qualified Name of a hierarchy: its 4-byte handle.
func HierarchyQN(handle uint32) []byte { return binary.BigEndian.AppendUint32(nil, handle) }

// QualifiedName computes QN(object) = nameAlg || H_nameAlg(QN(parent) ||
// Name(object)) (TPM 2.0 Part 1, "Qualified Name"), with nameAlg taken from
// the object's Name. For a primary key parentQN is HierarchyQN(handle); for
// a Keylime AK created under the EK it is QualifiedName(HierarchyQN(
// RHEndorsement), Name(EK)).
func QualifiedName(parentQN, name []byte) ([]byte, error) {
	if len(name) < 2 {
		return nil, fmt.Errorf("qualified name: Name of %d bytes", len(name))
	}
	alg := Alg(binary.BigEndian.Uint16(name))
	if _, ok := alg.Hash(); !ok || len(name) != 2+alg.DigestSize() {
		return nil, fmt.Errorf("qualified name: Name with algorithm %v and %d bytes", alg, len(name))
	}
	return append(append([]byte(nil), name[:2]...), digest(alg, parentQN, name)...), nil
}
