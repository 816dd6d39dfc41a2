package failure

import "strconv"

// Event ids shared by several components, spelled exactly as Keylime spells
// them (including the component "qoute_validation"). Components that need a
// finer distinction than Keylime makes keep Keylime's id and put the detail
// in Context["check"] (e.g. "nonce", "signature", "pcr_selection", "clock").
const (
	// QuoteInvalid: the quote failed verification (signature, nonce,
	// magic/type, PCR digest, PCR selection, clock).
	QuoteInvalid = "qoute_validation.quote_validation"
	// QuoteMalformed: the quote string could not be parsed.
	QuoteMalformed = "qoute_validation.invalid_quote"
	// QuoteHashAlg: a hash, signing or encryption algorithm not accepted.
	QuoteHashAlg = "qoute_validation.invalid_hash_alg"
	// QuoteNoPubkey: no attestation key to verify against.
	QuoteNoPubkey = "qoute_validation.no_pubkey"
	// QuoteInvalidData: PCR 16 data binding could not be checked.
	QuoteInvalidData = "qoute_validation.invalid_data"

	PCRMissing        = "pcr_validation.missing_pcrs"
	PCR16Missing      = "pcr_validation.missing_pcr_16"
	MBPolicyInvalid   = "pcr_validation.invalid_mb_policy"
	MBMissingPCRs     = "measured_boot.missing_pcrs"
	MBParser          = "measured_boot.parser"
	IMAParserEntry    = "ima.parser.entry"
	IMAToMToU         = "ima.validation.tomtou"
	IMAPCR            = "ima.validation.ima_pcr"
	IMAInvalidEntryNB = "qoute_validation.invalid_ima_entry_nb"
)

// InvalidPCR is "pcr_validation.invalid_pcr_N".
func InvalidPCR(n int) string { return "pcr_validation.invalid_pcr_" + strconv.Itoa(n) }

// MBInvalidPCR is "measured_boot.invalid_pcr_N": the boot event log replay
// does not match the quoted PCR.
func MBInvalidPCR(n int) string { return "measured_boot.invalid_pcr_" + strconv.Itoa(n) }
