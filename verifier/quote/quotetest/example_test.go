package quotetest_test

import (
	"fmt"

	"github.com/zest-attest/zest/verifier/quote"
	"github.com/zest-attest/zest/verifier/quote/quotetest"
)

// A real quote from the simulator, bound to an agent key in PCR 16 like
// rust-keylime does, verified the way a verifier would across a reboot.
func Example() {
	tpm, err := quotetest.Open()
	if err != nil {
		panic(err)
	}
	defer tpm.Close()
	ak, err := tpm.NewAK(quotetest.RSASSA, quote.AlgSHA256)
	if err != nil {
		panic(err)
	}
	defer ak.Close()

	agentKey := []byte("-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n")
	tpm.Extend(quote.AlgSHA256, 10, quotetest.ExtendDigest("an IMA entry"))
	tpm.BindData(quote.AlgSHA256, agentKey)
	q1, _ := ak.Quote([]byte("nonce-1"), quote.NewPCRSelection(quote.AlgSHA256, 10, 16))

	// The registrar would hand out ak.Public() as aik_tpm.
	key, _ := quote.ParseAK(ak.Public())
	v1, failures := quote.VerifyString(q1.String(), key, quote.Options{Nonce: []byte("nonce-1"), Mask: 1<<10 | 1<<16, Data: agentKey})
	fmt.Println("round 1:", v1 != nil, len(failures))

	tpm.Reboot()
	tpm.BindData(quote.AlgSHA256, agentKey)
	q2, _ := ak.Quote([]byte("nonce-2"), quote.NewPCRSelection(quote.AlgSHA256, 10, 16))
	prev := v1.ClockInfo()
	v2, failures := quote.VerifyString(q2.String(), key, quote.Options{Nonce: []byte("nonce-2"), Data: agentKey, Previous: &prev})
	fmt.Println("round 2:", v2 != nil, len(failures), "rebooted:", v2.Rebooted())
	// Output:
	// round 1: true 0
	// round 2: true 0 rebooted: true
}
