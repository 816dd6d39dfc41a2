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

// Wiring (for the verifier and the CLI):
//
//	st, _ := archive.OpenStore(ctx, dsn, archive.OpenOptions{Migrate: !archive.IsPostgres(dsn)})
//	signer, _ := archive.LoadSigner(keyPath)
//	w := &archive.Writer{Store: st, Signer: signer, Log: archive.LogLocal} // or LogRekor
//	// once per agent registration:
//	w.RecordRegistration(ctx, &archive.Registration{AgentID: id, Time: t, AK: ak.Ref, ...}, ak)
//	// after every round (the record, its blobs and the outbox row commit together):
//	w.RecordRound(ctx, &archive.Round{...Evidence, policies by Ref, Verdict, Failures}, blobs...)
//	// in the background, until shutdown:
//	log, _ := archive.OpenLocalLog(dir, origin) // or archive.NewRekorLog(url)
//	(&archive.Outbox{Store: st, Log: log, Keys: keyring}).Run(ctx, time.Second)
//
// Replay re-evaluates evidence through a RoundVerifier the verifier
// package provides; without one it reports verdicts as recorded.
