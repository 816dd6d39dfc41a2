package mb

import (
	"encoding/hex"
	"errors"

	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/verifier/failure"
)

// VerifyFailures turns an error of eventlog.Parse or eventlog.Verify into
// Keylime's failures: one "measured_boot.invalid_pcr_N" rejection per PCR
// whose replay differs from the quote (context as Keylime's: got = quoted,
// expected = replayed from the log), or one "measured_boot.parser" error
// for a log that could not be parsed or replayed. nil gives nil.
func VerifyFailures(err error) failure.List {
	if err == nil {
		return nil
	}
	var fails failure.List
	var me *eventlog.MismatchError
	if errors.As(err, &me) {
		for _, m := range me.Mismatches {
			fails.Rejectf(failure.MBInvalidPCR(m.PCR), map[string]any{
				"context":  "boot event log PCR value does not match",
				"bank":     string(me.Algorithm),
				"pcr":      m.PCR,
				"got":      hex.EncodeToString(m.Expected),
				"expected": hex.EncodeToString(m.Got),
			}, "%s PCR %d replayed from the boot event log is %x, the quote has %x", me.Algorithm, m.PCR, m.Got, m.Expected)
		}
		return fails
	}
	ctx := map[string]any{"reason": err.Error()}
	var pe *eventlog.ParseError
	if errors.As(err, &pe) {
		ctx["event"], ctx["offset"], ctx["field"] = pe.Index, pe.Offset, pe.Field
	}
	fails.Errorf(failure.MBParser, ctx, "the boot event log cannot be used: %v", err)
	return fails
}
