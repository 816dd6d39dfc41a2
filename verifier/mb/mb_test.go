package mb

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
)

func readLog(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "eventlog", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".b64") {
		if b, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b))); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func parse(t testing.TB, name string) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Parse(readLog(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// verifyAll verifies l against its own replay (what a quote of an honest
// machine holds) for PCRs 0-23 in bank alg, minus drop.
func verifyAll(t testing.TB, l *eventlog.Log, alg digests.Algorithm, drop ...int) *eventlog.Verified {
	t.Helper()
	rep, err := l.Replay(alg)
	if err != nil {
		t.Fatal(err)
	}
	quoted := map[int][]byte{}
	for p := 0; p <= 15; p++ {
		if slices.Contains(drop, p) {
			continue
		}
		v, ok := rep[p]
		if !ok {
			v = make([]byte, alg.Size())
		}
		quoted[p] = v
	}
	v, err := eventlog.Verify(l, alg, quoted)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func refstate(t testing.TB, name string, withoutSB bool) *policygen.MBRefstate {
	t.Helper()
	r, err := policygen.GenerateMBRefstate(parse(t, name), policygen.MBGenerateOptions{WithoutSecureBoot: withoutSB})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keylimeRefstate is the refstate Keylime's own generator wrote for a log.
func keylimeRefstate(t testing.TB, name string) *policygen.MBRefstate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "keylime", "mb-refstate", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := policygen.ParseMBRefstate(b, name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checks(l failure.List) []string {
	var out []string
	for _, f := range l {
		c, _ := f.Context["check"].(string)
		if c == "" {
			c = f.ID
		}
		out = append(out, c)
	}
	return out
}

// TestEvaluateOwnRefstate: every Keylime log passes against the refstate
// generated from it, by zest and by Keylime, including the Lenovo laptop
// log (StartupLocality 3, POST codes, Boot Guard, 4 dbx lists, a firmware
// boot-menu application) that Keylime's example policy rejects.
func TestEvaluateOwnRefstate(t *testing.T) {
	tests := []struct {
		log, keylime string
		withoutSB    bool
	}{
		{"binary_bios_measurements-secureboot", "binary_bios_measurements-secureboot.json", false},
		{"mb_log.b64", "mb_log.json", false},
		{"binary_bios_measurements", "binary_bios_measurements.json", true},
	}
	for _, tt := range tests {
		t.Run(tt.log, func(t *testing.T) {
			v := verifyAll(t, parse(t, tt.log), digests.SHA256)
			if fails := Evaluate(v, refstate(t, tt.log, tt.withoutSB), Options{}); len(fails) != 0 {
				t.Errorf("zest refstate: %v", fails)
			}
			// Keylime's own refstate has no firmware_apps: only the
			// Lenovo log needs the weakening option then.
			kr := keylimeRefstate(t, tt.keylime)
			fails := Evaluate(v, kr, Options{})
			if tt.log == "binary_bios_measurements" {
				if got := checks(fails); !slices.Equal(got, []string{CheckFirmwareApp}) {
					t.Errorf("Keylime refstate, strict: checks %v, want [firmware_app]", got)
				} else if fails[0].Context["event"] != 26 {
					t.Errorf("firmware_app failure names event %v, want 26", fails[0].Context["event"])
				}
				fails = Evaluate(v, kr, Options{AllowUnpinnedFirmwareApps: true})
			}
			if len(fails) != 0 {
				t.Errorf("Keylime refstate: %v", fails)
			}
		})
	}
}

func TestEvaluateTamperedRefstate(t *testing.T) {
	v := verifyAll(t, parse(t, "binary_bios_measurements-secureboot"), digests.SHA256)
	tests := []struct {
		name   string
		mod    func(r *policygen.MBRefstate)
		checks []string
	}{
		{"kernel digest", func(r *policygen.MBRefstate) { r.Kernels[0].KernelAuthcode[0] ^= 1 }, []string{CheckBootChain}},
		{"shim digest", func(r *policygen.MBRefstate) { r.Kernels[0].ShimAuthcode[5] ^= 1 }, []string{CheckBootChain}},
		{"initrd digest", func(r *policygen.MBRefstate) { r.Kernels[0].InitrdPlain[0] ^= 1 }, []string{CheckBootChain}},
		{"cmdline", func(r *policygen.MBRefstate) { r.Kernels[0].KernelCmdline += `\ single` }, []string{CheckBootChain}},
		{"cmdline not RE2", func(r *policygen.MBRefstate) { r.Kernels[0].KernelCmdline = `(?<=x)` }, []string{CheckCmdlineRegexp}},
		{"second kernel alternative fixes it", func(r *policygen.MBRefstate) {
			k := r.Kernels[0]
			k.KernelCmdline = "nope"
			r.Kernels = []policygen.MBKernel{k, r.Kernels[0]}
		}, nil},
		{"scrtm", func(r *policygen.MBRefstate) { r.ScrtmAndBios[0].SCRTM["sha256"][0] ^= 1 }, []string{CheckFirmware}},
		{"blob order", func(r *policygen.MBRefstate) {
			pf := r.ScrtmAndBios[0].PlatformFirmware
			pf[0], pf[1] = pf[1], pf[0]
		}, []string{CheckFirmware}},
		{"pk", func(r *policygen.MBRefstate) { r.PK[0].Data[10] ^= 1 }, []string{CheckPK}},
		{"kek", func(r *policygen.MBRefstate) { r.KEK = r.KEK[1:] }, []string{CheckKEK}},
		{"db also used as authority", func(r *policygen.MBRefstate) { r.DB = nil }, []string{CheckDB, CheckDB, CheckDB, CheckDB, CheckDB}},
		{"dbx extra revocation", func(r *policygen.MBRefstate) {
			r.DBX = append(r.DBX, policygen.MBSignature{Owner: r.DBX[0].Owner, Data: make([]byte, 32)})
		}, []string{CheckDBX}},
		{"dbx fewer revocations is fine", func(r *policygen.MBRefstate) { r.DBX = r.DBX[:10] }, nil},
		{"vendor_db", func(r *policygen.MBRefstate) { r.VendorDB = nil }, []string{CheckVendorDB}},
		{"mokdig", func(r *policygen.MBRefstate) { r.MokDig[0]["sha256"][3] ^= 1 }, []string{CheckMokList}},
		{"secure boot off", func(r *policygen.MBRefstate) {
			r.HasSecureBoot = false
			r.Kernels[0].VmlinuzPlain = make([]byte, 32)
		}, []string{CheckSecureBoot, CheckBootChain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := refstate(t, "binary_bios_measurements-secureboot", false).Clone()
			tt.mod(r)
			fails := Evaluate(v, r, Options{})
			if got := checks(fails); !slices.Equal(got, tt.checks) {
				t.Fatalf("checks %v, want %v\n%v", got, tt.checks, fails)
			}
			for _, f := range fails {
				if f.ID != FailureID || f.Context["policy"] != PolicyName {
					t.Errorf("failure %v: id/policy", f)
				}
				if f.Kind == failure.Reject && f.Context["pcr"] == nil {
					t.Errorf("failure %v names no PCR", f)
				}
			}
		})
	}
}

// tamper modifies a parsed log, then verifies it against its own replay
// (the attacker controls the log, not the quote).
func TestEvaluateTamperedLog(t *testing.T) {
	const name = "binary_bios_measurements-secureboot"
	ref := refstate(t, name, false)
	find := func(l *eventlog.Log, pcr int, typ eventlog.EventType, contains string) *eventlog.Event {
		for i := range l.Events {
			e := &l.Events[i]
			if e.PCR == pcr && e.Type == typ && bytes.Contains(e.Data, []byte(contains)) {
				return e
			}
		}
		t.Fatalf("no PCR %d %s event containing %q", pcr, typ, contains)
		return nil
	}
	sha := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	setDigest := func(e *eventlog.Event, d []byte) {
		for i := range e.Digests {
			if e.Digests[i].Algorithm == digests.SHA256 {
				e.Digests[i].Value = d
			}
		}
	}
	tests := []struct {
		name   string
		mod    func(l *eventlog.Log)
		checks []string
		event  int // index the first failure must name, -1 for none
	}{
		{"cmdline text swapped, digest kept", func(l *eventlog.Log) {
			e := find(l, 8, eventlog.EV_IPL, "kernel_cmdline")
			e.Data = bytes.Replace(e.Data, []byte("quiet"), []byte("quie1"), 1)
		}, []string{CheckDataBinding, CheckBootChain}, 94},
		{"cmdline changed with its digest", func(l *eventlog.Log) {
			e := find(l, 8, eventlog.EV_IPL, "kernel_cmdline")
			e.Data = bytes.Replace(e.Data, []byte("quiet"), []byte("init=/bin/sh"), 1)
			setDigest(e, sha(bytes.TrimSuffix(bytes.TrimPrefix(e.Data, []byte("kernel_cmdline: ")), []byte{0})))
		}, []string{CheckBootChain}, -1},
		{"SecureBoot data says off", func(l *eventlog.Log) {
			e := find(l, 7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, "S\x00e\x00c\x00u\x00r\x00e\x00B")
			e.Data[len(e.Data)-1] = 0
		}, []string{CheckDataBinding, CheckSecureBoot}, 4},
		{"extra boot application", func(l *eventlog.Log) {
			e := *find(l, 4, eventlog.EV_EFI_BOOT_SERVICES_APPLICATION, "")
			e.Index = 200
			setDigest(&e, sha([]byte("bootkit")))
			l.Events = append(l.Events, e)
		}, []string{CheckBootChain}, -1},
		{"relabelled as firmware app", func(l *eventlog.Log) {
			// A bootkit that relabels its own event with a FvVol path.
			fw := parse(t, "binary_bios_measurements").Events[25]
			fw.Index = 200
			setDigest(&fw, sha([]byte("bootkit")))
			fw.Digests = fw.Digests[1:2] // sha256 only, as this log
			fw.Digests[0].ID = eventlog.AlgSHA256
			l.Events = append(l.Events, fw)
		}, []string{CheckFirmwareApp}, 200},
		{"error separator", func(l *eventlog.Log) {
			e := find(l, 7, eventlog.EV_SEPARATOR, "")
			e.Data = []byte{1, 0, 0, 0}
			setDigest(e, sha(e.Data))
		}, []string{CheckSeparator}, -2},
		{"debug mode", func(l *eventlog.Log) {
			e := eventlog.Event{Index: 201, PCR: 7, Type: eventlog.EV_EFI_ACTION, Data: []byte(debugMode),
				Digests: []eventlog.Digest{{ID: eventlog.AlgSHA256, Algorithm: digests.SHA256, Value: sha([]byte(debugMode))}}}
			l.Events = append(l.Events, e)
		}, []string{CheckDebugMode}, 201},
		{"post code in PCR 3", func(l *eventlog.Log) {
			e := eventlog.Event{Index: 202, PCR: 3, Type: eventlog.EV_POST_CODE, Data: []byte("x"),
				Digests: []eventlog.Digest{{ID: eventlog.AlgSHA256, Algorithm: digests.SHA256, Value: sha([]byte("x"))}}}
			l.Events = append(l.Events, e)
		}, []string{CheckUnexpectedEvent}, 202},
		{"second PK", func(l *eventlog.Log) {
			e := *find(l, 7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, "P\x00K\x00")
			e.Index = 203
			l.Events = append(l.Events, e)
		}, []string{CheckRepeated}, 203},
		{"chainloader after linux", func(l *eventlog.Log) {
			// GRUB's linux command logged the expected command line, then
			// a chainloaded image (which is what runs) got its own.
			const cmd = "chainloader /evil.efi"
			e := eventlog.Event{Index: 205, PCR: 8, Type: eventlog.EV_IPL, Data: []byte("grub_cmd: " + cmd + "\x00"),
				Digests: []eventlog.Digest{{ID: eventlog.AlgSHA256, Algorithm: digests.SHA256, Value: sha([]byte(cmd))}}}
			l.Events = append(l.Events, e)
		}, []string{CheckBootChain}, -1},
		{"unknown PCR 9 file", func(l *eventlog.Log) {
			e := *find(l, 9, eventlog.EV_IPL, "initramfs")
			e.Index = 204
			e.Data = []byte("(hd0,gpt2)/evil.efi\x00")
			l.Events = append(l.Events, e)
		}, []string{CheckIPL}, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parse(t, name)
			tt.mod(l)
			fails := Evaluate(verifyAll(t, l, digests.SHA256), ref, Options{})
			if got := checks(fails); !slices.Equal(got, tt.checks) {
				t.Fatalf("checks %v, want %v\n%v", got, tt.checks, fails)
			}
			if tt.event >= 0 && fails[0].Context["event"] != tt.event {
				t.Errorf("first failure names event %v, want %d: %v", fails[0].Context["event"], tt.event, fails[0])
			}
			if fails.Verdict() != failure.VerdictRejected {
				t.Errorf("verdict %v", fails.Verdict())
			}
		})
	}
}

func TestEvaluateCannotEvaluate(t *testing.T) {
	l := parse(t, "binary_bios_measurements")
	ref := refstate(t, "binary_bios_measurements", true)
	tests := []struct {
		name string
		v    *eventlog.Verified
		ref  *policygen.MBRefstate
		id   string
	}{
		{"nil log", nil, ref, FailureID},
		{"nil refstate", verifyAll(t, l, digests.SHA256), nil, FailureID},
		{"sha1 bank", verifyAll(t, l, digests.SHA1), ref, FailureID},
		{"PCR 14 not quoted", verifyAll(t, l, digests.SHA256, 14), ref, failure.MBMissingPCRs},
		{"no kernels", verifyAll(t, l, digests.SHA256), &policygen.MBRefstate{ScrtmAndBios: ref.ScrtmAndBios}, FailureID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fails := Evaluate(tt.v, tt.ref, Options{})
			if len(fails) != 1 || fails[0].ID != tt.id || fails.Verdict() != failure.VerdictError {
				t.Fatalf("got %v (verdict %v), want one %s error", fails, fails.Verdict(), tt.id)
			}
		})
	}
}

// The Linux EFI stub (kernels >= 5.19 or so, initrd through LoadFile2) logs
// the initrd again as an EV_EVENT_TAG in PCR 9.
func TestEvaluateStubTaggedEvents(t *testing.T) {
	const name = "binary_bios_measurements-secureboot"
	ref := refstate(t, name, false)
	tagged := func(tag uint32, payload string, digest []byte) eventlog.Event {
		d := binary.LittleEndian.AppendUint32(nil, tag)
		d = binary.LittleEndian.AppendUint32(d, uint32(len(payload)))
		d = append(d, payload...)
		return eventlog.Event{Index: 300, PCR: 9, Type: eventlog.EV_EVENT_TAG, Data: d,
			Digests: []eventlog.Digest{{ID: eventlog.AlgSHA256, Algorithm: digests.SHA256, Value: digest}}}
	}
	bad := sha256.Sum256([]byte("other initrd"))
	tests := []struct {
		name   string
		ev     eventlog.Event
		checks []string
	}{
		{"initrd as GRUB measured it", tagged(linuxInitrdTag, "Linux initrd\x00", ref.Kernels[0].InitrdPlain), nil},
		{"load options", tagged(linuxLoadOptionsTag, "LOADED_IMAGE::LoadOptions\x00", bad[:]), nil},
		{"another initrd", tagged(linuxInitrdTag, "Linux initrd\x00", bad[:]), []string{CheckBootChain}},
		{"unknown tag", tagged(0x1234, "x", bad[:]), []string{CheckIPL}},
		{"malformed", eventlog.Event{Index: 300, PCR: 9, Type: eventlog.EV_EVENT_TAG, Data: []byte{1, 2},
			Digests: []eventlog.Digest{{ID: eventlog.AlgSHA256, Algorithm: digests.SHA256, Value: bad[:]}}}, []string{CheckIPL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parse(t, name)
			l.Events = append(l.Events, tt.ev)
			fails := Evaluate(verifyAll(t, l, digests.SHA256), ref, Options{})
			if got := checks(fails); !slices.Equal(got, tt.checks) {
				t.Fatalf("checks %v, want %v\n%v", got, tt.checks, fails)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	if VerifyFailures(nil) != nil {
		t.Error("nil error gave failures")
	}
	l := parse(t, "binary_bios_measurements-secureboot")
	rep, _ := l.Replay(digests.SHA256)
	quoted := map[int][]byte{0: rep[0], 4: make([]byte, 32), 7: make([]byte, 32)}
	_, err := eventlog.Verify(l, digests.SHA256, quoted)
	fails := VerifyFailures(err)
	if got := fails.IDs(); !slices.Equal(got, []string{"measured_boot.invalid_pcr_4", "measured_boot.invalid_pcr_7"}) || fails.Verdict() != failure.VerdictRejected {
		t.Fatalf("ids %v verdict %v", got, fails.Verdict())
	}
	if fails[0].Context["expected"] != hex.EncodeToString(rep[4]) || fails[0].Context["got"] != strings.Repeat("00", 32) {
		t.Errorf("context %v", fails[0].Context)
	}
	_, err = eventlog.Parse(readLog(t, "binary_bios_measurements-bogus"))
	fails = VerifyFailures(err)
	if len(fails) != 1 || fails[0].ID != failure.MBParser || fails.Verdict() != failure.VerdictError || fails[0].Context["offset"] != 4 {
		t.Errorf("parse error: %v", fails)
	}
}

// TestEvaluateChainloader evaluates the golden VM's real boots (OVMF, shim,
// GRUB chainloading Linux 6.1, with and without Secure Boot): the kernel
// command line is GRUB's chainloader command, no initrd is measured, and
// the refstate generated from each log accepts it. An entry that expects
// an initrd, another command line or another kernel rejects it.
func TestEvaluateChainloader(t *testing.T) {
	for _, tt := range []struct {
		log       string
		withoutSB bool
	}{
		{"../goldenvm/testdata/ovmf-shim-grub-6.1.binary_bios_measurements", true},
		{"../goldenvm/testdata/ovmf-secureboot-shim-grub-6.1.binary_bios_measurements", false},
	} {
		t.Run(filepath.Base(tt.log), func(t *testing.T) {
			v := verifyAll(t, parse(t, tt.log), digests.SHA256)
			r := refstate(t, tt.log, tt.withoutSB)
			k := r.Kernels[0]
			const cmdline = `/vmlinuz\ console=ttyS0\ rootfstype=ramfs\ panic=\-1\ ima_policy=tcb\ ima_hash=sha256\ ima_template=ima\-ng\ initrd=\\initrd\.img`
			if !k.InitrdUnmeasured || k.InitrdPlain != nil || k.KernelAuthcode == nil || k.KernelCmdline != cmdline {
				t.Fatalf("generated kernel entry %+v", k)
			}
			if fails := Evaluate(v, r, Options{}); len(fails) != 0 {
				t.Fatalf("own refstate: %v", fails)
			}
			for name, mod := range map[string]func(*policygen.MBKernel){
				"initrd expected": func(k *policygen.MBKernel) {
					k.InitrdUnmeasured, k.InitrdPlain = false, make(policygen.Hex, 32)
				},
				"other command line": func(k *policygen.MBKernel) { k.KernelCmdline += `\ quiet` },
				"other kernel":       func(k *policygen.MBKernel) { k.KernelAuthcode = make(policygen.Hex, 32) },
			} {
				bad := *r
				bk := k
				mod(&bk)
				bad.Kernels = []policygen.MBKernel{bk}
				if got := checks(Evaluate(v, &bad, Options{})); !slices.Equal(got, []string{CheckBootChain}) {
					t.Errorf("%s: checks %v, want [%s]", name, got, CheckBootChain)
				}
			}
		})
	}
}
