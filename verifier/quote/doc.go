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
// AK attributes when the AK's TPM public area is known, accepts RSAPSS (salt
// length detected), accepts only canonical pcrblobs, can check the
// qualifiedSigner, and tells a reboot (resetCount increased: Verified.Rebooted)
// from a stale or replayed quote (clock, resetCount or restartCount going
// backwards: a failure).
//
// Check names in Context["check"]: parse, ak, ak_attributes, sign_alg,
// hash_alg, hash_alg_mismatch, signature, magic, type, qualified_signer,
// nonce, pcr_selection, pcr_bank, pcr_values, pcr_digest, requested_pcrs,
// clock_safe, reset_count, restart_count, clock, data_pcr.
//
// Everything here is safe for concurrent use; Verify allocates a few KB and
// costs little more than the signature check itself.
//
// The package needs no TPM and imports only verifier/failure from zest;
// it must not import archive or any transport. Package quotetest mints
// real quotes with the go-tpm-tools simulator for tests.
package quote
