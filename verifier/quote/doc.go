// Package quote parses and verifies TPM 2.0 quotes as Keylime carries them:
// the pull-model quote string "r<TPMS_ATTEST>:<TPMT_SIGNATURE>:<pcrblob>"
// (all standard base64; the pcrblob is tpm2-tools' little-endian memory
// image of a TPML_PCR_SELECTION and its TPML_DIGEST lists) and the push-model
// message/signature/subject_data parts.
//
// Parsing (Parse, ParseParts, FromBytes) returns an unverified *Quote whose
// fields are for display only. Verify checks it against an attestation key
// and returns a *Verified — the only way to obtain PCR values, clock
// information and the nonce as facts — or the complete list of failures,
// each with a Keylime event id (failure.QuoteInvalid and friends, spelled
// "qoute_validation.*" as Keylime does) and the precise check in
// Context["check"].
//
// Beyond Keylime's checkquote, Verify requires the pcrblob's selection to be
// byte-identical to the signed TPMS_QUOTE_INFO.pcrSelect (PCR indices are not
// covered by pcrDigest), requires every requested PCR to be quoted, enforces
// AK attributes when the AK's TPM public area is known, and accepts RSAPSS.
//
// The package needs no TPM and imports only verifier/failure from zest;
// it must not import archive or any transport. Package quotetest mints
// real quotes with the go-tpm-tools simulator for tests.
package quote
