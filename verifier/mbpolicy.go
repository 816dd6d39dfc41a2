package verifier

import (
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/mb"
)

// Refstate evaluates verified UEFI logs against a Keylime measured-boot
// reference state with zest's engine (verifier/mb).
type Refstate struct {
	Ref     *policygen.MBRefstate
	Options mb.Options
}

// EvaluateMB implements MBEvaluator.
func (r Refstate) EvaluateMB(v *eventlog.Verified) failure.List {
	return mb.Evaluate(v, r.Ref, r.Options)
}

// ParseRefstate parses and schema-checks a Keylime MB refstate (name is
// used in errors) into an MBEvaluator.
func ParseRefstate(data []byte, name string, opts mb.Options) (MBEvaluator, error) {
	ref, err := policygen.ParseMBRefstate(data, name)
	if err != nil {
		return nil, err
	}
	return Refstate{Ref: ref, Options: opts}, nil
}
