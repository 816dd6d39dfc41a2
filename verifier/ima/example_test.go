package ima_test

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/ima"
)

// One round against rust-keylime's 826-line test log: the quote's SHA-256
// PCR 10 covers the first two lines only, so two are consumed and the rest
// wait for the next round, which asks the agent for entry 2.
func Example() {
	policy := policygen.NewRuntimePolicy()
	policy.Digests["boot_aggregate"] = []string{"0000000000000000000000000000000000000000"}
	policy.Excludes = []string{"/"}
	compiled, err := ima.Compile(policy, ima.Options{})
	if err != nil {
		panic(err)
	}
	log, err := os.Open("../../fixtures/rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements")
	if err != nil {
		panic(err)
	}
	defer log.Close()
	pcr10, _ := hex.DecodeString("b3717b19074011f018f5f6064d6fe4c8f20c0b5498b67842d5109e0e02b930eb")

	r := compiled.Evaluate(ima.State{}, ima.Input{Log: log, PCR10: map[digests.Algorithm][]byte{digests.SHA256: pcr10}})
	fmt.Println(r.Verdict, r.Read, r.Consumed, r.Pending, r.State.NextEntry)
	// Output: trusted 826 2 824 2
}
