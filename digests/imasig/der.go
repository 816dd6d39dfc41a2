package imasig

import (
	"encoding/asn1"
	"fmt"
)

// The DER walking here exists only to name what a key is when Go's crypto/x509
// refuses it (secp256k1, Ed448, DSA private keys ...) and to read compressed EC
// points, which Keylime (pyca/cryptography) accepts and crypto/x509 does not.
// Go's parsers stay the authority for every key zest actually uses.

const (
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagOID         = 0x06
	tagSequence    = 0x30
	tagContext0    = 0xa0
)

// readTLV splits one DER element (single-byte tag, definite length) off b.
func readTLV(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag, l := b[0], int(b[1])
	b = b[2:]
	if l >= 0x80 {
		n := l & 0x7f
		if n == 0 || n > 4 || len(b) < n {
			return 0, nil, nil, false
		}
		l = 0
		for _, c := range b[:n] {
			l = l<<8 | int(c)
		}
		b = b[n:]
	}
	if l < 0 || l > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:l], b[l:], true
}

// expect reads one element that must carry tag.
func expect(b []byte, tag byte) (content, rest []byte, ok bool) {
	t, c, r, ok := readTLV(b)
	if !ok || t != tag {
		return nil, nil, false
	}
	return c, r, true
}

// algorithm is an AlgorithmIdentifier as found in SPKI and PKCS#8.
type algorithm struct {
	oid   asn1.ObjectIdentifier
	curve asn1.ObjectIdentifier // id-ecPublicKey namedCurve parameter, if any
}

func parseOID(content []byte) (asn1.ObjectIdentifier, bool) {
	var oid asn1.ObjectIdentifier
	// Re-wrap so encoding/asn1 does the arc decoding and its validity checks.
	full := append([]byte{tagOID, byte(len(content))}, content...)
	if len(content) > 127 {
		return nil, false
	}
	rest, err := asn1.Unmarshal(full, &oid)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	return oid, true
}

// parseAlgorithm reads AlgorithmIdentifier ::= SEQUENCE { OID, params ANY OPTIONAL }.
func parseAlgorithm(b []byte) (alg algorithm, rest []byte, ok bool) {
	seq, rest, ok := expect(b, tagSequence)
	if !ok {
		return alg, nil, false
	}
	o, params, ok := expect(seq, tagOID)
	if !ok {
		return alg, nil, false
	}
	if alg.oid, ok = parseOID(o); !ok {
		return alg, nil, false
	}
	if c, _, ok := expect(params, tagOID); ok {
		alg.curve, _ = parseOID(c)
	}
	return alg, rest, true
}

// parseSPKI reads SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }
// and returns the BIT STRING's content without its unused-bits byte.
func parseSPKI(der []byte) (alg algorithm, key []byte, ok bool) {
	seq, rest, ok := expect(der, tagSequence)
	if !ok || len(rest) != 0 {
		return alg, nil, false
	}
	alg, seq, ok = parseAlgorithm(seq)
	if !ok {
		return alg, nil, false
	}
	bits, _, ok := expect(seq, tagBitString)
	if !ok || len(bits) < 1 || bits[0] != 0 {
		return alg, nil, false
	}
	return alg, bits[1:], true
}

// certSPKI digs the SubjectPublicKeyInfo out of a DER certificate without
// parsing anything else.
func certSPKI(der []byte) ([]byte, bool) {
	cert, rest, ok := expect(der, tagSequence)
	if !ok || len(rest) != 0 {
		return nil, false
	}
	tbs, _, ok := expect(cert, tagSequence)
	if !ok {
		return nil, false
	}
	if len(tbs) > 0 && tbs[0] == tagContext0 { // [0] EXPLICIT version
		if _, tbs, ok = expect(tbs, tagContext0); !ok {
			return nil, false
		}
	}
	// serialNumber, signature, issuer, validity, subject
	for _, tag := range []byte{tagInteger, tagSequence, tagSequence, tagSequence, tagSequence} {
		if _, tbs, ok = expect(tbs, tag); !ok {
			return nil, false
		}
	}
	tag, _, after, ok := readTLV(tbs)
	if !ok || tag != tagSequence {
		return nil, false
	}
	return tbs[:len(tbs)-len(after)], true
}

// pkcs8Algorithm reads the algorithm of a PKCS#8 PrivateKeyInfo.
func pkcs8Algorithm(der []byte) (algorithm, bool) {
	seq, rest, ok := expect(der, tagSequence)
	if !ok || len(rest) != 0 {
		return algorithm{}, false
	}
	if _, seq, ok = expect(seq, tagInteger); !ok {
		return algorithm{}, false
	}
	alg, seq, ok := parseAlgorithm(seq)
	if !ok {
		return algorithm{}, false
	}
	if _, _, ok = expect(seq, tagOctetString); !ok {
		return algorithm{}, false
	}
	return alg, true
}

// sec1Curve reads the namedCurve of an RFC 5915 ECPrivateKey.
func sec1Curve(der []byte) (asn1.ObjectIdentifier, bool) {
	seq, rest, ok := expect(der, tagSequence)
	if !ok || len(rest) != 0 {
		return nil, false
	}
	v, seq, ok := expect(seq, tagInteger)
	if !ok || len(v) != 1 || v[0] != 1 {
		return nil, false
	}
	if _, seq, ok = expect(seq, tagOctetString); !ok {
		return nil, false
	}
	params, _, ok := expect(seq, tagContext0)
	if !ok {
		return nil, false
	}
	o, _, ok := expect(params, tagOID)
	if !ok {
		return nil, false
	}
	return parseOID(o)
}

var (
	oidRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidECPublic   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256       = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384       = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521       = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidSM2Key     = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}
	keyAlgorithms = []struct {
		oid  asn1.ObjectIdentifier
		name string
	}{
		{oidRSA, "rsa"},
		{oidRSAPSS, "rsassa-pss"},
		{asn1.ObjectIdentifier{1, 3, 101, 112}, "ed25519"},
		{asn1.ObjectIdentifier{1, 3, 101, 113}, "ed448"},
		{asn1.ObjectIdentifier{1, 3, 101, 110}, "x25519"},
		{asn1.ObjectIdentifier{1, 3, 101, 111}, "x448"},
		{asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}, "dsa"},
		{asn1.ObjectIdentifier{1, 2, 840, 10046, 2, 1}, "dh"},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 3, 1}, "dh"},
		{asn1.ObjectIdentifier{1, 2, 643, 7, 1, 1, 1, 1}, "gost2012-256"},
		{asn1.ObjectIdentifier{1, 2, 643, 7, 1, 1, 1, 2}, "gost2012-512"},
	}
	curveNames = []struct {
		oid  asn1.ObjectIdentifier
		name string
	}{
		{oidP256, "P-256"},
		{oidP384, "P-384"},
		{oidP521, "P-521"},
		{asn1.ObjectIdentifier{1, 3, 132, 0, 33}, "P-224"},
		{asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 1}, "P-192"},
		{asn1.ObjectIdentifier{1, 3, 132, 0, 10}, "secp256k1"},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}, "brainpoolP256r1"},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11}, "brainpoolP384r1"},
		{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13}, "brainpoolP512r1"},
		{asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}, "sm2"},
	}
)

func curveName(oid asn1.ObjectIdentifier) string {
	if oid == nil {
		return "with explicit or missing curve parameters"
	}
	for _, c := range curveNames {
		if c.oid.Equal(oid) {
			return c.name
		}
	}
	return "curve " + oid.String()
}

// describe names an algorithm for error messages ("ed25519", "ecdsa secp256k1").
func (a algorithm) describe() string {
	if a.oid.Equal(oidECPublic) || a.oid.Equal(oidSM2Key) {
		return "ecdsa " + curveName(a.curve)
	}
	for _, k := range keyAlgorithms {
		if k.oid.Equal(a.oid) {
			return k.name
		}
	}
	return fmt.Sprintf("with algorithm OID %s", a.oid)
}
