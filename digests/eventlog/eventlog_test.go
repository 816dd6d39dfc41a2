package eventlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

// allFixtures lists every log in fixtures/eventlog with what Parse must do.
// Known issues are per log; expected values come from
// shared/reference/tcg-event-log.md §11 and keylime-mb-refstate.md §13.
var allFixtures = []struct {
	name    string
	wantErr string // substring of the expected error; "" = must parse
	format  Format
	banks   string
	events  int
	issue   string // known quirk of this log, documented here
}{
	{name: "binary_bios_measurements", format: FormatCryptoAgile, banks: "sha1, sha256", events: 120,
		issue: "StartupLocality 3: PCR 0 starts at 00..03; no Exit Boot Services events in PCR 5"},
	{name: "binary_bios_measurements-secureboot", format: FormatCryptoAgile, banks: "sha256", events: 98,
		issue: "sha256-only; kernel BSA without device path"},
	{name: "binary_bios_measurements-bogus", wantErr: "event 0 at offset 4: EventType: event type 0x6e690a73 is reserved"},
	{name: "binary_bios_measurements-empty", wantErr: "no bytes"},
	{name: "mb_log.b64", format: FormatCryptoAgile, banks: "sha256", events: 101},
	{name: "coreos_36_shielded_vm_no_secure_boot_eventlog", format: FormatCryptoAgile, banks: "sha1, sha256, sha384", events: 75},
	{name: "crypto_agile_eventlog", format: FormatCryptoAgile, banks: "sha256", events: 26},
	{name: "ebs_event_missing_eventlog", format: FormatSHA1, banks: "sha1", events: 38,
		issue: "SHA-1 format; PCR 5 lacks the Exit Boot Services pair (quirk ebs-missing-success)"},
	{name: "option_rom_eventlog", format: FormatSHA1, banks: "sha1", events: 61,
		issue: "Windows log: EV_NO_ACTION entries against PCR 0xFFFFFFFF (NoPCR)"},
	{name: "sb_cert_eventlog", format: FormatCryptoAgile, banks: "sha1, sha256, sha384", events: 14},
	{name: "short_no_action_eventlog", format: FormatSHA1, banks: "sha1", events: 1,
		issue: "a lone SHA-1-format StartupLocality entry: parsed as a SHA-1 log, nothing to replay"},
	{name: "ubuntu_2104_shielded_vm_no_secure_boot_eventlog", format: FormatCryptoAgile, banks: "sha1, sha256, sha384", events: 105},
}

func TestParseFixtures(t *testing.T) {
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, f := range allFixtures {
		listed[f.name] = true
	}
	for _, e := range ents {
		// Subdirectories hold inputs of other tests (bad/: malformed logs for the CLI).
		if !e.IsDir() && e.Name() != "LICENSE" && e.Name() != "SOURCE" && !listed[e.Name()] {
			t.Errorf("fixture %s is not in allFixtures", e.Name())
		}
	}
	for _, f := range allFixtures {
		t.Run(f.name, func(t *testing.T) {
			l, err := Parse(readFixture(t, f.name))
			if f.wantErr != "" {
				var pe *ParseError
				if err == nil || !strings.Contains(err.Error(), f.wantErr) || !errors.As(err, &pe) {
					t.Fatalf("Parse error = %v, want *ParseError containing %q", err, f.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Format != f.format || l.bankNames() != f.banks || len(l.Events) != f.events {
				t.Errorf("got %s [%s] %d events, want %s [%s] %d", l.Format, l.bankNames(), len(l.Events), f.format, f.banks, f.events)
			}
			for _, b := range l.Banks {
				if _, err := l.Replay(b.Algorithm); err != nil {
					t.Errorf("replay %s: %v", b.Algorithm, err)
				}
			}
		})
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, name string) *Log {
	t.Helper()
	l, err := Parse(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Expected PCR values: tcg-event-log.md §11.1 (Ubuntu, also go-eventlog's
// extract_test.go), §11.2 (Lenovo; = ima.md §13.6), §11.3 (mb_log.b64),
// keylime-mb-refstate.md §13.3 (secureboot), §11.4 (ebs PCR 5).
var expectedPCRs = []struct {
	log  string
	alg  digests.Algorithm
	pcrs map[int]string
}{
	{"ubuntu_2104_shielded_vm_no_secure_boot_eventlog", digests.SHA256, map[int]string{
		0:  "24af52a4f429b71a3184a6d64cddad17e54ea030e2aa6576bf3a5a3d8bd3328f",
		1:  "45ed8540f34db53220ef197e5fb8a3835b2095454349e445f397f13d91c509a5",
		2:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		3:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		4:  "ebc7ae25d0347868250995c9a8fff16bf79e048453262d0ef2756e213c76181c",
		5:  "47715f9f2c10769da6ee23be5633fd88e247caf162f4eeb0b6f8482ccfeadfb5",
		6:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		7:  "0d8847bc5eca06452df10e2f214363845c7ac11d47525a5474e225e72ce25dfe",
		8:  "b9a324947de94ec2fd4b04483ecfcb37dfdd520a7c0ecf73c77bf2595549c84f",
		9:  "adb87be3efd96cc3a2f66b8aa7564f9727563ef494a95d571a3f38ff4afb25dd",
		14: "8351c65483c5419079e8c96758dd2130bee075d71fea226f68ec4eb5bfc71983",
	}},
	{"ubuntu_2104_shielded_vm_no_secure_boot_eventlog", digests.SHA1, map[int]string{
		0: "0f2d3a2a1adaa479aeeca8f5df76aadc41b862ea", 1: "f5310dfcfcec5571cbf730064d526906c9cea2f0",
		2: "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236", 3: "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
		4: "e53d909941dcbc699b273fc4c0d817a41c6ab975", 5: "9e2af4bac1432830594b1ae90c68c52a20a9700e",
		6: "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236", 7: "ede7204673f41ac2592b0d3b4cd429b43f39dc61",
		8: "bda59abe1c7d18e0b85edfcb4381f10d4dcc88f7", 9: "39fd49224476f4d7eea26a53e264c9c33e47649c",
		14: "cd3734d2bdfcfba9e443ac02c03c812ffcceb255",
	}},
	{"ubuntu_2104_shielded_vm_no_secure_boot_eventlog", digests.SHA384, map[int]string{
		0: "8be2d39fecef6e883d467379c57847437cfa03a6f7f7f78dcb2a05a479db4b4749ececedd105b760bc8313abccf1dfb6",
	}},
	{"binary_bios_measurements", digests.SHA256, map[int]string{
		0:  "0ee9a7feba8f4172f1a7451594aa5731665a4d353ac61814042ce107a00742f2",
		1:  "d268196b8d9585b41e6de98d7b2af9cc2fcc5b8ae5923b354105bf7c4d73b9cc",
		2:  "4aa7ce1fed66fdadf81a0cf06a47f14625f72fb4ff5fb5d6aa5d0632c9407878",
		3:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		4:  "a77ff9ab296e10186dd7e7082eab94e795b1ba9d84e920b09cf6272f68c2711c",
		5:  "569e53aee038897b12b1a0842c1edb67435d53c831bdce67f6440dd2a903925f",
		6:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		7:  "741fd028c51b4d2fbdcc7f28014cc758d17ccc1fe2ea7ca17b0e8009480a557c",
		8:  "f5dc3feeda9a15dbcc11c6d99572bd063e8b0a435c222b4352c466726b0f5daf",
		9:  "e0bde30667767849f70f6f1f5b561bc3d25d8aff186b8db0ac405d652f80e3c4",
		14: "17cdefd9548f4383b67a37a901673bf3c8ded6f619d36c8007562de1d93c81cc",
	}},
	{"binary_bios_measurements", digests.SHA1, map[int]string{
		0: "78f3e576d5da8873860e557535d181f4a37e2963", 1: "7120c684347e60261ac85383014ea0f21423a78f",
		2: "081983639b4e5cce287d3d907fd813f306436fd7", 3: "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236",
		4: "60ea1bd941d44196a6e0e793d3b3ef675a07bcb8", 5: "68afe01cbc6b45e7a4a950661a80a4ad85d60540",
		6: "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236", 7: "b7e9b0d88de19a6f949457be8b6aeb7a4d28fd0a",
		8: "e4aa684b1a9ee105b63495efe7b9ad376e648a0c", 9: "08bdebbac6f5d9be59e98a5cf5ae90e83970b548",
		14: "ffaf5dfab351dc9b3b7a3cf748759e137f1601a8",
	}},
	{"mb_log.b64", digests.SHA256, map[int]string{
		0:  "9d24421442591dbdb8e8220ae8f26e7ebac76eb52cf3ced2d2b753d747e37b88",
		1:  "9fd04d43f803f1aa0ada7de54eb73daed2dbf499f5b6ebe04461bafef3a36b53",
		2:  "72001a25201b263bc60f869ace2f728b09dc4be78b9c80adca87a013c2d26950",
		3:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		4:  "8a2eb1c3b1e3dec41f491ec82ae6a66306fa4dfd4b35589d7f19092b00aef5d8",
		5:  "2a22aa7ccdb44ffe4193ea11f8d7482c765ca7757c393f6afae1f00bec099bef",
		6:  "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
		7:  "b4d804679133a73c3988362ef234fbf597f0490d1a0cae072949b63a93fb7b39",
		8:  "3af46c43c4c2262b790aefd609cebf69c50cdf18d0504263f6fb8087dd09661f",
		9:  "cf5d36fa9315595ed2624d10d5f8565452c62fae3c2b069f7421c12f8418a7bc",
		14: "43f0f3919109c5bb9ab6eb7a25857cc9c1eec6b512b6f44034de4b85a1e3d428",
	}},
	{"binary_bios_measurements-secureboot", digests.SHA256, map[int]string{
		0:  "0d993cf4baec1dc2a47013c8bcc13e1593d5e6ba9cc4630f422e98d310212aff",
		7:  "2f96e1f1bf7f91b6f17e1bcb823e717e43782ff75481237711f2ed7bf8a8edb1",
		8:  "79019cc5ebc05767cff5469087b629f58c52f0a3380a33a89414f56939197e19",
		9:  "acd038dd8ec2f7e42a7c5c68e07ae6713962d8835412b1f5632c7e63da36ffc2",
		14: "66c465262f16d108fd77f2f94c4ae0040f81b3168242a827fcf5efcd812de053",
	}},
	{"ebs_event_missing_eventlog", digests.SHA1, map[int]string{5: "e5781a2fd49c23a33b16bf0ba5f10efa1aa5d43c"}},
}

func TestReplayExpected(t *testing.T) {
	for _, c := range expectedPCRs {
		got, err := mustParse(t, c.log).Replay(c.alg)
		if err != nil {
			t.Fatalf("%s %s: %v", c.log, c.alg, err)
		}
		for pcr, want := range c.pcrs {
			if hex.EncodeToString(got[pcr]) != want {
				t.Errorf("%s %s PCR %d = %x, want %s", c.log, c.alg, pcr, got[pcr], want)
			}
		}
		if len(c.pcrs) > 5 && len(got) != len(c.pcrs) {
			t.Errorf("%s %s: replay touched %d PCRs, want %d", c.log, c.alg, len(got), len(c.pcrs))
		}
	}
}

func TestStartupLocality(t *testing.T) {
	l := mustParse(t, "binary_bios_measurements")
	loc, ok, err := l.StartupLocality()
	if err != nil || !ok || loc != 3 {
		t.Fatalf("StartupLocality = %d %v %v, want 3", loc, ok, err)
	}
	// Without the StartupLocality event PCR 0 starts at zero: the wrong
	// value of tcg-event-log.md §11.2.
	stripped := &Log{Format: l.Format, Banks: l.Banks}
	for _, e := range l.Events {
		if e.Type != EV_NO_ACTION {
			stripped.Events = append(stripped.Events, e)
		}
	}
	p, err := stripped.Replay(digests.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(p[0]); got != "a92ee8923b8fce7d2158298bc5c9b15b7f7de8264944696e672591c0c372f771" {
		t.Errorf("PCR 0 from zero = %s", got)
	}
	// A second StartupLocality, or one after PCR 0 was extended, is refused.
	dup := &Log{Format: l.Format, Banks: l.Banks, Events: append([]Event{l.Events[0]}, l.Events...)}
	if _, err := dup.Replay(digests.SHA256); err == nil || !strings.Contains(err.Error(), "second StartupLocality") {
		t.Errorf("duplicate StartupLocality: %v", err)
	}
	late := &Log{Format: l.Format, Banks: l.Banks, Events: append(append([]Event{}, l.Events[1:]...), l.Events[0])}
	if _, err := late.Replay(digests.SHA256); err == nil || !strings.Contains(err.Error(), "after PCR 0 was extended") {
		t.Errorf("late StartupLocality: %v", err)
	}
}

func TestReplayErrors(t *testing.T) {
	l := mustParse(t, "binary_bios_measurements-secureboot")
	if _, err := l.Replay(digests.SHA1); err == nil || !strings.Contains(err.Error(), "no sha1 bank") {
		t.Errorf("sha1 on sha256-only log: %v", err)
	}
	if _, err := l.Replay(digests.SM3); err == nil {
		t.Error("sm3 replay succeeded")
	}
}

// Boot aggregates: ima.md §13.6 (Lenovo) and keylime-mb-refstate.md §13.3
// (secureboot, sha256 PCR 0-9).
func TestBootAggregate(t *testing.T) {
	cases := []struct {
		log  string
		alg  digests.Algorithm
		want string
	}{
		{"binary_bios_measurements", digests.SHA1, "a487eef424f06c172cb00898af18c7f76f924cb8"},
		{"binary_bios_measurements", digests.SHA256, "fb98c60c8c6c6b84f04bd9b0fdf79409bcac8a78db545ccf6ce07e093dd2155d"},
		{"binary_bios_measurements-secureboot", digests.SHA256, "2f7a0cdfe7662dd5b01d16c2a4fcedc242564edc670a4239dad288fb6a75b04d"},
	}
	for _, c := range cases {
		p, err := mustParse(t, c.log).Replay(c.alg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := BootAggregate(p, c.alg)
		if err != nil || hex.EncodeToString(got) != c.want {
			t.Errorf("%s %s boot_aggregate = %x, %v; want %s", c.log, c.alg, got, err, c.want)
		}
	}
	if _, err := BootAggregate(map[int][]byte{3: {1, 2}}, digests.SHA256); err == nil {
		t.Error("short PCR value accepted")
	}
	if _, err := BootAggregate(nil, digests.SM3); err == nil {
		t.Error("sm3 accepted")
	}
}

func quoteFrom(t *testing.T, l *Log, alg digests.Algorithm, pcrs ...int) map[int][]byte {
	t.Helper()
	p, err := l.Replay(alg)
	if err != nil {
		t.Fatal(err)
	}
	q := map[int][]byte{}
	for _, i := range pcrs {
		if v, ok := p[i]; ok {
			q[i] = v
		} else {
			q[i] = make([]byte, alg.Size())
		}
	}
	return q
}

func TestVerify(t *testing.T) {
	l := mustParse(t, "binary_bios_measurements")
	q := quoteFrom(t, l, digests.SHA256, 0, 1, 2, 3, 4, 5, 6, 7, 15)
	v, err := Verify(l, digests.SHA256, q)
	if err != nil {
		t.Fatal(err)
	}
	if loc, ok := v.StartupLocality(); !ok || loc != 3 {
		t.Errorf("verified StartupLocality = %d %v", loc, ok)
	}
	if len(v.PCRs()) != 9 || len(v.Quirks()) != 0 || v.Algorithm() != digests.SHA256 {
		t.Errorf("PCRs %d quirks %v", len(v.PCRs()), v.Quirks())
	}
	n := 0
	for _, e := range v.Events() {
		if e.PCR > 7 || e.Type == EV_NO_ACTION {
			t.Fatalf("event %d of unquoted PCR %d / NO_ACTION returned", e.Index, e.PCR)
		}
		n++
	}
	// 14+20+4+1+5+2+1+7 events in PCR 0-7, minus the StartupLocality entry.
	if n != 53 {
		t.Errorf("verified %d events, want 53", n)
	}

	// Two wrong PCRs: both listed with expected and got.
	bad := quoteFrom(t, l, digests.SHA256, 0, 4, 7, 9)
	bad[4] = make([]byte, 32)
	bad[9] = bytes.Repeat([]byte{0xaa}, 32)
	_, err = Verify(l, digests.SHA256, bad)
	var me *MismatchError
	if !errors.As(err, &me) || len(me.Mismatches) != 2 || me.Mismatches[0].PCR != 4 || me.Mismatches[1].PCR != 9 {
		t.Fatalf("mismatch error = %v", err)
	}
	for _, s := range []string{"PCR 4 expected 0000", "got a77ff9ab", "PCR 9 expected aaaa", "got e0bde306"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}

	// Quoted PCR the log never extends must be at its initial value.
	z := map[int][]byte{12: bytes.Repeat([]byte{1}, 32)}
	if _, err := Verify(l, digests.SHA256, z); !errors.As(err, &me) {
		t.Errorf("non-zero PCR 12: %v", err)
	}
	for name, q := range map[string]map[int][]byte{
		"empty":     {},
		"short":     {0: {1}},
		"range":     {24: make([]byte, 32)},
		"wrongbank": nil,
	} {
		alg := digests.SHA256
		if name == "wrongbank" {
			alg, q = digests.SHA384, map[int][]byte{0: make([]byte, 48)}
		}
		if _, err := Verify(l, alg, q); err == nil {
			t.Errorf("%s quote accepted", name)
		}
	}
	if _, err := Verify(nil, digests.SHA256, q); err == nil {
		t.Error("nil log accepted")
	}
}

// The EBS workaround check of tcg-event-log.md §11.4: go-attestation's
// TestEBSVerifyWorkaround expects PCR 5 = 31245808....
func TestQuirks(t *testing.T) {
	seen := map[string]bool{}
	for _, q := range Quirks {
		if q.ID == "" || seen[q.ID] || q.Description == "" || q.PCR < 0 || q.PCR > maxPCR || q.events == nil {
			t.Errorf("bad quirk entry %+v", q)
		}
		seen[q.ID] = true
	}
	l := mustParse(t, "ebs_event_missing_eventlog")
	q := quoteFrom(t, l, digests.SHA1, 0, 4, 5, 7)
	q[5] = unhex(t, "31245808d6d35849bc394f6343f2b3ff908ed5e3")
	if _, err := Verify(l, digests.SHA1, q); err == nil {
		t.Fatal("strict Verify accepted the missing EBS events")
	}
	v, err := VerifyWithOptions(l, digests.SHA1, q, VerifyOptions{AllowQuirks: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Quirks(); len(got) != 1 || got[5] != "ebs-missing-success" {
		t.Errorf("quirks = %v", got)
	}
	var synth []string
	for _, e := range v.Events() {
		if e.Synthetic() != "" {
			synth = append(synth, string(e.Data))
		}
	}
	if strings.Join(synth, "|") != "Exit Boot Services Invocation|Exit Boot Services Returned with Success" {
		t.Errorf("synthetic events %q", synth)
	}
	// Every quirk makes the PCR it targets match when its events are the
	// missing ones, and no other quirk is picked first.
	for _, qk := range Quirks {
		evs, err := qk.events(l, digests.SHA1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := l.replay(digests.SHA1, evs)
		if err != nil {
			t.Fatal(err)
		}
		q[qk.PCR] = want[qk.PCR]
		v, err := VerifyWithOptions(l, digests.SHA1, q, VerifyOptions{AllowQuirks: true})
		if err != nil || v.Quirks()[qk.PCR] != qk.ID {
			t.Errorf("quirk %s: %v %v", qk.ID, err, v)
		}
	}
	// A quirk never rescues a PCR that is wrong for another reason.
	q[5] = make([]byte, 20)
	if _, err := VerifyWithOptions(l, digests.SHA1, q, VerifyOptions{AllowQuirks: true}); err == nil {
		t.Error("zero PCR 5 accepted with quirks")
	}
}

// le builds little-endian test input.
func le(vals ...any) []byte {
	var b bytes.Buffer
	for _, v := range vals {
		switch x := v.(type) {
		case []byte:
			b.Write(x)
		case string:
			b.WriteString(x)
		default:
			_ = binary.Write(&b, binary.LittleEndian, x)
		}
	}
	return b.Bytes()
}

func specID(algs ...uint16) []byte {
	body := le("Spec ID Event03\x00", uint32(0), uint8(0), uint8(2), uint8(0), uint8(2), uint32(len(algs)))
	for _, a := range algs {
		body = append(body, le(a, uint16(AlgID(a).Algorithm().Size()))...)
	}
	body = append(body, 0)
	return le(uint32(0), uint32(EV_NO_ACTION), make([]byte, 20), uint32(len(body)), body)
}

func TestParseErrors(t *testing.T) {
	good := specID(0x0b)
	sep := le(uint32(7), uint32(EV_SEPARATOR), uint32(1), uint16(0x0b), make([]byte, 32), uint32(4), []byte{0, 0, 0, 0})
	cases := []struct {
		name, data, want string
	}{
		{"short header", "\x00\x00\x00", "event 0 at offset 0: header"},
		{"event size", string(le(uint32(0), uint32(8), make([]byte, 20), uint32(100), "x")), "event 0 at offset 28: EventSize: 100 bytes declared, 1 remain"},
		{"event size cap", string(le(uint32(0), uint32(8), make([]byte, 20), uint32(MaxEventSize+1))), "exceeds"},
		{"unused type", string(le(uint32(0), uint32(EV_UNUSED), make([]byte, 20), uint32(0))), "reserved or unused"},
		{"reserved type", string(le(uint32(0), uint32(0x13), make([]byte, 20), uint32(0))), "reserved or unused"},
		{"pcr range", string(le(uint32(24), uint32(8), make([]byte, 20), uint32(0))), "PCR 24 out of range"},
		{"count", string(good) + string(le(uint32(7), uint32(4), uint32(2))), "event 1 at offset 73: digest count: 2 digests"},
		{"unknown alg", string(good) + string(le(uint32(7), uint32(4), uint32(1), uint16(0x0c))), "not in the Spec ID table"},
		{"truncated digest", string(good) + string(le(uint32(7), uint32(4), uint32(1), uint16(0x0b), make([]byte, 5))), "digest: need 32 bytes, 5 remain"},
		{"second spec id", string(good) + string(sep) + string(le(uint32(0), uint32(3), uint32(1), uint16(0x0b), make([]byte, 32), uint32(17), "Spec ID Event03\x00\x00")), "only allowed as the first entry"},
		{"spec zero algs", string(specID()), "no algorithms"},
		{"spec dup alg", string(specID(0x0b, 0x0b)), "listed twice"},
		{"spec pcr", "\x01" + string(good[1:]), "Spec ID PCRIndex: PCR 1, want 0"},
		{"spec digest", string(good[:8]) + "\x01" + string(good[9:]), "Spec ID Digest: digest is not all zero"},
		{"spec version", string(good[:32+21]) + "\x01" + string(good[32+22:]), "offset 52: Spec ID specVersion: version 1.0, want 2.0"},
		{"spec short", string(le(uint32(0), uint32(3), make([]byte, 20), uint32(17), "Spec ID Event03\x00\x00")), "Spec ID header"},
		{"spec algs overflow", string(good[:32+24]) + "\xff\xff\xff\x0f" + string(good[32+28:]), "do not fit"},
		{"spec vendor", string(good[:len(good)-1]) + "\x05", "5 vendor bytes declared, 0 follow"},
		{"spec size", string(le(uint32(0), uint32(3), make([]byte, 20), uint32(33), good[32:32+28], uint16(0x0b), uint16(20), uint8(0))), "sha256 declared with 20-byte digests"},
		{"spec size 0", string(le(uint32(0), uint32(3), make([]byte, 20), uint32(33), good[32:32+28], uint16(0x99), uint16(0), uint8(0))), "digest size 0"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if l, err := Parse(append(good, sep...)); err != nil || len(l.Events) != 1 || l.Events[0].Offset != 65 || l.Events[0].Index != 1 {
		t.Errorf("minimal log: %v %+v", err, l)
	}
	// Unknown algorithms are carried by their declared size, never replayed.
	odd := specID(0x0b)
	odd = le(uint32(0), uint32(EV_NO_ACTION), make([]byte, 20), uint32(len(odd)-32+4),
		odd[32:32+24], uint32(2), uint16(0x0b), uint16(32), uint16(0x99), uint16(3), uint8(0))
	ev := le(uint32(7), uint32(4), uint32(2), uint16(0x99), "abc", uint16(0x0b), make([]byte, 32), uint32(4), []byte{0, 0, 0, 0})
	l, err := Parse(append(odd, ev...))
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Events[0].Digests[0]; d.ID != 0x99 || d.Algorithm != "" || string(d.Value) != "abc" {
		t.Errorf("unknown digest %+v", d)
	}
	if _, err := l.Replay(digests.SHA256); err != nil {
		t.Error(err)
	}
}

// Every prefix of a real log either parses (at an entry boundary) or fails
// with a *ParseError; none panics.
func TestTruncated(t *testing.T) {
	data := readFixture(t, "binary_bios_measurements")
	l := mustParse(t, "binary_bios_measurements")
	bound := map[int]bool{}
	for _, e := range l.Events {
		bound[e.Offset] = true
	}
	for n := 1; n < len(data); n++ {
		if n > 2048 && !bound[n] && n%61 != 0 {
			continue // every prefix of the first entries, a sample of the rest
		}
		_, err := Parse(data[:n])
		var pe *ParseError
		if bound[n] {
			if err != nil {
				t.Fatalf("prefix %d at entry boundary: %v", n, err)
			}
			continue
		}
		if !errors.As(err, &pe) || !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d: err = %v", n, err)
		}
		if pe.Offset > n {
			t.Fatalf("prefix %d: offset %d beyond input", n, pe.Offset)
		}
	}
}

func TestSpecIDFields(t *testing.T) {
	l := mustParse(t, "ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
	s := l.SpecID
	if s == nil || s.Signature != "Spec ID Event03" || s.PlatformClass != 0 || s.VersionMajor != 2 || s.UintnSize != 2 ||
		len(s.Banks) != 3 || s.Banks[2] != (Bank{ID: AlgSHA384, Algorithm: digests.SHA384, Size: 48}) || len(s.VendorInfo) != 0 {
		t.Errorf("SpecID = %+v", s)
	}
	if e := l.Events[0]; e.Index != 1 || e.Offset != 73 || e.Type != EV_S_CRTM_VERSION || len(e.Digests) != 3 {
		t.Errorf("first event %+v", e)
	}
	if !l.HasBank(digests.SHA384) || l.HasBank(digests.SHA512) || l.HasBank("") {
		t.Error("HasBank")
	}
	if sha1 := mustParse(t, "ebs_event_missing_eventlog"); sha1.SpecID != nil || sha1.Events[0].Index != 0 || sha1.Events[0].Type != EV_S_CRTM_VERSION {
		t.Errorf("SHA-1 log first event %+v", sha1.Events[0])
	}
}

// An EV_EFI_HCRTM_EVENT in PCR 0 starts PCR 0 at 00..04 (as tpm2-tools does).
func TestHCRTMLocality(t *testing.T) {
	sum := func(b []byte) []byte { h, _ := digests.SHA256.New(); h.Write(b); return h.Sum(nil) }
	d := sum([]byte("HCRTM"))
	data := append(specID(0x0b), le(uint32(0), uint32(EV_EFI_HCRTM_EVENT), uint32(1), uint16(0x0b), d, uint32(5), "HCRTM")...)
	l, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !IsHCRTM(&l.Events[0]) {
		t.Error("not HCRTM")
	}
	p, err := l.Replay(digests.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	init := make([]byte, 32)
	init[31] = 4
	if !bytes.Equal(p[0], sum(append(init, d...))) {
		t.Errorf("PCR 0 = %x", p[0])
	}
}
