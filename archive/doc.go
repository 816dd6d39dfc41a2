// Package archive is zest's durable attestation record: every registration
// and every attestation round is stored with its raw evidence, the policies
// it was judged against (by content hash), its verdict and failures, signed
// by the verifier over an RFC 8785 canonical encoding, and entered in a
// transparency log (an embedded Merkle log by default, Rekor when
// configured) whose inclusion proofs are kept beside the record so they can
// be checked offline years later.
//
// The package owns the record model, the stores (SQLite embedded default,
// PostgreSQL), the outbox that feeds the transparency log, replay between
// dates, auditor bundles and the HTML report. It evaluates evidence only
// through the RoundVerifier interface, so it imports nothing from verifier/
// except verifier/failure; verifier and digests must never import archive.
package archive
