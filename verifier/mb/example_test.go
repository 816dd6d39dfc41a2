package mb_test

import (
	"fmt"
	"os"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/mb"
)

// A verifier parses the agent's log, verifies it against the PCR values of
// a signature-checked quote, and evaluates the verified log against the
// operator's refstate. Here the "quote" is the log's own replay.
func ExampleEvaluate() {
	raw, _ := os.ReadFile("../../fixtures/eventlog/binary_bios_measurements-secureboot")
	doc, _ := os.ReadFile("../../fixtures/keylime/mb-refstate/binary_bios_measurements-secureboot.json")

	log, err := eventlog.Parse(raw) // untrusted
	if err != nil {
		fmt.Println(err)
		return
	}
	quoted, _ := log.Replay(digests.SHA256) // stands in for the quote's PCRs 0-9, 14
	for p := range 10 {
		if quoted[p] == nil {
			quoted[p] = make([]byte, 32)
		}
	}
	verified, err := eventlog.Verify(log, digests.SHA256, quoted)
	if err != nil {
		fmt.Println(err) // measured_boot.invalid_pcr_N territory
		return
	}
	ref, err := policygen.ParseMBRefstate(doc, "refstate.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	fails := mb.Evaluate(verified, ref, mb.Options{})
	fmt.Println(fails.Verdict(), len(fails))
	// Output: trusted 0
}
