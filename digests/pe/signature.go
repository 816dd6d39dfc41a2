package pe

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/zest-attest/zest/digests"
)

// ErrUnsigned is returned (wrapped) by Signatures and Signers for an image
// without an attribute certificate table.
var ErrUnsigned = errors.New("image has no attribute certificate table")

// Signature is one PKCS#7 SignedData WIN_CERTIFICATE of an image, parsed
// and NOT verified: zest does not check the PKCS#7 signature, the
// certificate chain, the signer's authenticated attributes or any nested
// signature. It only exposes what the signer claims, so tests and tools can
// compare the embedded digest with the image's own Authenticode digest.
type Signature struct {
	// Offset is the file offset of the WIN_CERTIFICATE.
	Offset int64
	// Certificates is the SignedData certificate set, in stored order
	// (signer, intermediates, sometimes roots, in whatever order the signer
	// wrote them).
	Certificates []*x509.Certificate
	// Signer is the certificate matching the first SignerInfo's issuer and
	// serial number, or nil when the set does not contain it.
	Signer *x509.Certificate

	digestAlg digests.Algorithm
	digest    []byte
}

// SignedDigest returns the digest algorithm and value of the
// SpcIndirectDataContent: the Authenticode digest the signer claims for the
// image.
func (s *Signature) SignedDigest() (digests.Algorithm, []byte) {
	return s.digestAlg, bytes.Clone(s.digest)
}

// Signers returns the certificates of every PKCS#7 signature embedded in
// the image (not verified; see Signature).
func Signers(r io.ReaderAt, size int64) ([]*x509.Certificate, error) {
	sigs, err := Signatures(r, size)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, s := range sigs {
		certs = append(certs, s.Certificates...)
	}
	return certs, nil
}

// Signatures parses the image's attribute certificate table (not verified;
// see Signature).
func Signatures(r io.ReaderAt, size int64) ([]*Signature, error) {
	f, err := Open(r, size, nameOf(r))
	if err != nil {
		return nil, err
	}
	return f.Signatures()
}

// Signatures walks the WIN_CERTIFICATE entries of the certificate table
// (each padded to 8 bytes) and parses those of type
// WIN_CERT_TYPE_PKCS_SIGNED_DATA; other types are skipped. It returns
// ErrUnsigned for an image without a certificate table.
func (f *File) Signatures() ([]*Signature, error) {
	ct := f.CertTable
	if ct.Size == 0 {
		return nil, fmt.Errorf("%s: %w", f.name, ErrUnsigned)
	}
	const field = "certificate table"
	if ct.Size > maxCertTable {
		return nil, f.errf(f.certEntryOffset, field, "Size 0x%x is over zest's limit of 0x%x", ct.Size, maxCertTable)
	}
	// Open checked VirtualAddress+Size against the file size.
	table := make([]byte, ct.Size)
	if err := f.readAt(table, int64(ct.VirtualAddress), field); err != nil {
		return nil, err
	}
	var sigs []*Signature
	for pos := 0; pos < len(table); {
		off := int64(ct.VirtualAddress) + int64(pos)
		if len(table)-pos < winCertHeader {
			return nil, f.errf(off, "WIN_CERTIFICATE", "0x%x bytes left in the table, less than the 8-byte header", len(table)-pos)
		}
		length := binary.LittleEndian.Uint32(table[pos:])
		rev := binary.LittleEndian.Uint16(table[pos+4:])
		typ := binary.LittleEndian.Uint16(table[pos+6:])
		if length < winCertHeader || int64(length) > int64(len(table)-pos) {
			return nil, f.errf(off, "WIN_CERTIFICATE dwLength", "0x%x does not fit the 0x%x bytes left in the table", length, len(table)-pos)
		}
		if typ == certTypePKCS7 {
			if rev != certRevision2_0 {
				return nil, f.errf(off+4, "WIN_CERTIFICATE wRevision", "0x%x, want 0x0200", rev)
			}
			s, err := parseSignedData(table[pos+winCertHeader : pos+int(length)])
			if err != nil {
				return nil, f.errf(off+winCertHeader, "WIN_CERTIFICATE PKCS#7 SignedData", "%v", err)
			}
			s.Offset = off
			sigs = append(sigs, s)
		}
		pos += int((uint64(length) + 7) &^ 7)
	}
	if len(sigs) == 0 {
		return nil, f.errf(int64(ct.VirtualAddress), field, "no PKCS#7 SignedData entry")
	}
	return sigs, nil
}

// ASN.1 shapes (RFC 2315 PKCS#7 v1.5 and Microsoft's Authenticode
// specification). Only what zest reads is decoded; the rest stays raw.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      contentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type signerInfo struct {
	Version           int
	IssuerAndSerial   issuerAndSerial
	DigestAlgorithm   pkix.AlgorithmIdentifier
	AuthenticatedAttr asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryption  pkix.AlgorithmIdentifier
	EncryptedDigest   []byte
	Unauthenticated   asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type spcIndirectDataContent struct {
	Data          asn1.RawValue // SpcAttributeTypeAndOptionalValue (SpcPeImageData)
	MessageDigest digestInfo
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

var (
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	digestOIDs         = []struct {
		oid asn1.ObjectIdentifier
		alg digests.Algorithm
	}{
		{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, digests.SHA1},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, digests.SHA256},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, digests.SHA384},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, digests.SHA512},
	}
)

// unmarshalOne decodes one DER value and returns what follows it (callers
// decide whether trailing bytes are allowed: a WIN_CERTIFICATE's bCertificate
// may carry zero padding after the ContentInfo). encoding/asn1 accepts DER
// only; BER indefinite lengths are refused, which no UEFI signer emits.
func unmarshalOne(b []byte, v any, what string) ([]byte, error) {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return rest, nil
}

func parseSignedData(der []byte) (*Signature, error) {
	var ci contentInfo
	if _, err := unmarshalOne(der, &ci, "ContentInfo"); err != nil {
		return nil, err
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("ContentInfo contentType %v, want signedData %v", ci.ContentType, oidSignedData)
	}
	var sd signedData
	if rest, err := unmarshalOne(ci.Content.Bytes, &sd, "SignedData"); err != nil {
		return nil, err
	} else if len(rest) != 0 {
		return nil, fmt.Errorf("SignedData: %d trailing bytes", len(rest))
	}
	if !sd.ContentInfo.ContentType.Equal(oidSpcIndirectData) {
		return nil, fmt.Errorf("SignedData contentType %v, want SpcIndirectDataContent %v", sd.ContentInfo.ContentType, oidSpcIndirectData)
	}
	content := sd.ContentInfo.Content.Bytes
	// RFC 2315 content is ANY (Authenticode stores the SEQUENCE itself);
	// accept a CMS-style OCTET STRING wrapper too.
	if len(content) > 0 && content[0] == asn1.TagOctetString {
		var inner []byte
		if _, err := unmarshalOne(content, &inner, "SpcIndirectDataContent wrapper"); err != nil {
			return nil, err
		}
		content = inner
	}
	var idc spcIndirectDataContent
	if _, err := unmarshalOne(content, &idc, "SpcIndirectDataContent"); err != nil {
		return nil, err
	}
	s := &Signature{digest: idc.MessageDigest.Digest}
	for _, d := range digestOIDs {
		if idc.MessageDigest.Algorithm.Algorithm.Equal(d.oid) {
			s.digestAlg = d.alg
		}
	}
	if s.digestAlg == "" {
		return nil, fmt.Errorf("SpcIndirectDataContent digest algorithm %v is not one zest knows", idc.MessageDigest.Algorithm.Algorithm)
	}
	if len(s.digest) != s.digestAlg.Size() {
		return nil, fmt.Errorf("SpcIndirectDataContent %s digest is %d bytes, want %d", s.digestAlg, len(s.digest), s.digestAlg.Size())
	}
	for rest, i := sd.Certificates.Bytes, 0; len(rest) > 0; i++ {
		var raw asn1.RawValue
		var err error
		if rest, err = unmarshalOne(rest, &raw, fmt.Sprintf("certificate %d", i)); err != nil {
			return nil, err
		}
		if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence {
			continue // CertificateChoices other than a plain X.509 certificate
		}
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		s.Certificates = append(s.Certificates, c)
	}
	if len(sd.SignerInfos) > 0 {
		is := sd.SignerInfos[0].IssuerAndSerial
		for _, c := range s.Certificates {
			if bytes.Equal(c.RawIssuer, is.Issuer.FullBytes) && is.Serial != nil && c.SerialNumber.Cmp(is.Serial) == 0 {
				s.Signer = c
				break
			}
		}
	}
	return s, nil
}
