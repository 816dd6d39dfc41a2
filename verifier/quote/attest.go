package quote

// TPM constants from TPM 2.0 Part 2.
const (
	// GeneratedValue is TPM_GENERATED_VALUE, the magic of every TPMS_ATTEST.
	GeneratedValue uint32 = 0xFF544347
	// TypeQuote is TPM_ST_ATTEST_QUOTE.
	TypeQuote uint16 = 0x8018
)

// Bounds from TPM 2.0 Part 2: TPM2B_NAME holds a TPMU_NAME (a TPMT_HA,
// at most 2+64 bytes), TPM2B_DATA a TPMT_HA, TPM2B_DIGEST at most 64.
const (
	maxName   = 2 + 64
	maxData   = 2 + 64
	maxDigest = 64
	// maxAttest bounds a TPMS_ATTEST (TPM2B_ATTEST is at most a few
	// hundred bytes on every TPM; 2048 leaves room for large selections).
	maxAttest = 2048
)

// ClockInfo is TPMS_CLOCK_INFO. The JSON names are Keylime's tpm_clockinfo
// keys.
type ClockInfo struct {
	Clock        uint64 `json:"clock"`
	ResetCount   uint32 `json:"resetCount"`
	RestartCount uint32 `json:"restartCount"`
	Safe         bool   `json:"safe"`
}

// Attest is a parsed TPMS_ATTEST. Nothing in it is verified: it is what
// the agent sent, for display and for Verify to check.
type Attest struct {
	Magic           uint32
	Type            uint16
	QualifiedSigner []byte
	ExtraData       []byte
	ClockInfo       ClockInfo
	FirmwareVersion uint64
	// PCRSelect and PCRDigest are TPMS_QUOTE_INFO; set only when Type is
	// TypeQuote.
	PCRSelect []PCRSelection
	PCRDigest []byte
	// Attested holds the raw TPMU_ATTEST of a structure that is not a quote.
	Attested []byte
}

// ParseAttest parses a TPMS_ATTEST (without the TPM2B_ATTEST size). Errors
// are *ParseError with Part PartAttest.
func ParseAttest(b []byte) (*Attest, error) {
	if len(b) > maxAttest {
		return nil, &ParseError{Part: PartAttest, Msg: "longer than 2048 bytes"}
	}
	r := &reader{b: b, part: PartAttest}
	a := &Attest{}
	a.Magic = r.u32("magic")
	a.Type = r.u16("type")
	a.QualifiedSigner = r.tpm2b("qualifiedSigner", maxName)
	a.ExtraData = r.tpm2b("extraData", maxData)
	a.ClockInfo.Clock = r.u64("clockInfo.clock")
	a.ClockInfo.ResetCount = r.u32("clockInfo.resetCount")
	a.ClockInfo.RestartCount = r.u32("clockInfo.restartCount")
	switch safe := r.u8("clockInfo.safe"); safe {
	case 0:
	case 1:
		a.ClockInfo.Safe = true
	default:
		r.off--
		r.fail("clockInfo.safe", "TPMI_YES_NO value %d", safe)
	}
	a.FirmwareVersion = r.u64("firmwareVersion")
	if r.err != nil {
		return nil, r.err
	}
	if a.Type != TypeQuote {
		a.Attested = append([]byte(nil), b[r.off:]...)
		return a, nil
	}
	a.PCRSelect = r.pcrSelection("attested.quote.pcrSelect")
	a.PCRDigest = r.tpm2b("attested.quote.pcrDigest", maxDigest)
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return a, nil
}

// Signature is a parsed TPMT_SIGNATURE.
type Signature struct {
	Alg  Alg
	Hash Alg
	// RSA is the RSASSA/RSAPSS signature (modulus-sized, big-endian).
	RSA []byte
	// R and S are the ECC signature components as big-endian integers;
	// TPMs may drop leading zero octets.
	R []byte
	S []byte
	// HMAC is the digest of an HMAC "signature".
	HMAC []byte
}

const (
	maxRSASig   = 512 // RSA-4096
	maxECCParam = 66  // P-521
)

// ParseSignature parses a TPMT_SIGNATURE. Errors are *ParseError with Part
// PartSignature.
func ParseSignature(b []byte) (*Signature, error) {
	r := &reader{b: b, part: PartSignature}
	s := &Signature{Alg: Alg(r.u16("sigAlg"))}
	switch s.Alg {
	case AlgRSASSA, AlgRSAPSS:
		s.Hash = Alg(r.u16("hash"))
		s.RSA = r.tpm2b("sig", maxRSASig)
	case AlgECDSA, AlgECDAA, AlgSM2, AlgECSchnorr:
		s.Hash = Alg(r.u16("hash"))
		s.R = r.tpm2b("signatureR", maxECCParam)
		s.S = r.tpm2b("signatureS", maxECCParam)
	case AlgHMAC:
		s.Hash = Alg(r.u16("hash"))
		if n := s.Hash.DigestSize(); n == 0 {
			r.off -= 2
			r.fail("hash", "unknown HMAC hash %v", s.Hash)
		} else {
			s.HMAC = r.take("digest", n)
		}
	case AlgNull:
	default:
		if r.err == nil {
			r.off = 0
			r.fail("sigAlg", "unknown signature algorithm %v", s.Alg)
		}
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}
