package eventlog_test

import (
	"fmt"
	"os"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
)

// Parse, replay against (here: self-derived) quoted PCRs, and read only
// verified events.
func Example() {
	data, err := os.ReadFile("../../fixtures/eventlog/binary_bios_measurements")
	if err != nil {
		panic(err)
	}
	log, err := eventlog.Parse(data)
	if err != nil {
		panic(err)
	}
	quoted, _ := log.Replay(digests.SHA256) // a real verifier takes these from a checked quote
	v, err := eventlog.Verify(log, digests.SHA256, map[int][]byte{0: quoted[0], 4: quoted[4]})
	if err != nil {
		panic(err)
	}
	for _, e := range v.Events() {
		if e.Type == eventlog.EV_EFI_BOOT_SERVICES_APPLICATION {
			im, _ := eventlog.ParseImageLoad(&e)
			fmt.Println(e.PCR, im.Text())
		}
	}
	ba, _ := eventlog.BootAggregate(quoted, digests.SHA256)
	fmt.Printf("boot_aggregate %x\n", ba)
	// Output:
	// 4 FvVol(8fc151ae-c96f-4bc9-8c33-107992c7735b)/FvFile(821aca26-29ea-4993-839f-597fc021708d)
	// 4 Path(2,1,d041030a00000000)/Path(1,1,0006)/Path(1,1,0000)/Path(3,23,01000000002538b221d13750)/Path(4,1,0100000000080000000000000000080000000000e9bef6b810bc724cb34a6db8fd8f772c0202)/\EFI\fedora\shimx64.efi
	// 4 \EFI\fedora\grubx64.efi
	// boot_aggregate fb98c60c8c6c6b84f04bd9b0fdf79409bcac8a78db545ccf6ce07e093dd2155d
}
