package policygen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests/eventlog"
)

// peExpected reads fixtures/pe/expected.txt (values from pesign -h).
func peExpected(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", "pe", "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == file && f[1] == "edk2" && f[2] == "sha256" {
			return f[3]
		}
	}
	t.Fatalf("no edk2 sha256 for %s in expected.txt", file)
	return ""
}

func pefix(name string) string { return filepath.Join("..", "fixtures", "pe", name) }

func fileSHA256(t *testing.T, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBootChainFiles(t *testing.T) {
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	if err := os.WriteFile(initrd, []byte("not really an initrd"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := BootChain(context.Background(), BootChainFiles{
		Shim: pefix("signed-sbsign.efi"), Grub: pefix("odd.efi"), Kernel: pefix("even.efi"), Initrd: initrd,
		Cmdline: "/vmlinuz-6.1.0 root=UUID=1234-5678 ro quiet",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  Hex
		want string
	}{
		{"shim", k.ShimAuthcode, peExpected(t, "signed-sbsign.efi")},
		{"grub", k.GrubAuthcode, peExpected(t, "odd.efi")},
		{"kernel", k.KernelAuthcode, peExpected(t, "even.efi")},
		{"vmlinuz", k.VmlinuzPlain, fileSHA256(t, pefix("even.efi"))},
		{"initrd", k.InitrdPlain, fileSHA256(t, initrd)},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}
	if want := `/vmlinuz\-6\.1\.0\ root=UUID=1234\-5678\ ro\ quiet`; k.KernelCmdline != want {
		t.Errorf("cmdline = %s, want %s", k.KernelCmdline, want)
	}
}

func TestBootChainErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.efi")
	b, err := os.ReadFile(pefix("even.efi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, b[:300], 0o644); err != nil {
		t.Fatal(err)
	}
	ok := BootChainFiles{Shim: pefix("odd.efi"), Grub: pefix("odd.efi"), Kernel: pefix("odd.efi"), Initrd: pefix("odd.efi")}
	tests := []struct {
		name string
		mod  func(*BootChainFiles)
		want string
	}{
		{"missing grub", func(f *BootChainFiles) { f.Grub = "" }, "no GRUB given"},
		{"no such file", func(f *BootChainFiles) { f.Shim = filepath.Join(dir, "nope.efi") }, "shim: open"},
		{"truncated PE", func(f *BootChainFiles) { f.Kernel = broken }, "kernel: "},
		{"not a PE", func(f *BootChainFiles) { f.Grub = filepath.Join("..", "fixtures", "eventlog", "mb_log.b64") }, "GRUB: "},
		{"deb without member", func(f *BootChainFiles) { f.Shim = filepath.Join("..", "fixtures", "deb", "gzip.deb") }, "has no shim image"},
		{"initrd and no initrd", func(f *BootChainFiles) { f.NoInitrd = true }, "an initrd given for a chain that measures none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.mod(&f)
			_, err := BootChain(context.Background(), f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestBootChainNoInitrd: a chain whose initrd nobody measures (GRUB
// chainloader, Linux 6.1's stub) says so instead of carrying a digest, and
// the refstate round-trips.
func TestBootChainNoInitrd(t *testing.T) {
	k, err := BootChain(context.Background(), BootChainFiles{Shim: pefix("odd.efi"), Grub: pefix("odd.efi"), Kernel: pefix("even.efi"), NoInitrd: true, Cmdline: "/vmlinuz ro"})
	if err != nil {
		t.Fatal(err)
	}
	if !k.InitrdUnmeasured || k.InitrdPlain != nil || k.KernelAuthcode == nil || k.VmlinuzPlain == nil {
		t.Fatalf("kernel entry %+v", k)
	}
	r := &MBRefstate{ScrtmAndBios: []MBFirmware{{SCRTM: MBDigest{"sha256": make(Hex, 32)}}}}
	r.AddKernel(k)
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"initrd_unmeasured": true`)) || bytes.Contains(b, []byte("initrd_plain_sha256")) {
		t.Errorf("refstate:\n%s", b)
	}
	back, err := ParseMBRefstate(b, "r.json")
	if err != nil {
		t.Fatal(err)
	}
	if !back.Kernels[0].Equal(k) {
		t.Errorf("round trip: %+v, want %+v", back.Kernels[0], k)
	}
}

// TestBootChainDeb takes the images out of a .deb built here with dpkg-deb.
func TestBootChainDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dpkg-deb missing")
		}
		t.Skip("needs dpkg-deb")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "pkg")
	for dst, src := range map[string]string{
		"usr/lib/shim/shimx64.efi.signed":                   "signed-sbsign.efi",
		"usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "odd.efi",
		"boot/vmlinuz-6.1.0-test":                           "even.efi",
	} {
		b, err := os.ReadFile(pefix(src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: zest-boot\nVersion: 1\nArchitecture: amd64\nMaintainer: zest\nDescription: test\n"), 0o644)
	debFile := filepath.Join(dir, "boot.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, debFile).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v: %s", err, out)
	}
	k, err := BootChain(context.Background(), BootChainFiles{Shim: debFile, Grub: debFile, Kernel: debFile,
		Initrd: pefix("odd.efi"), Cmdline: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(k.ShimAuthcode) != peExpected(t, "signed-sbsign.efi") || hex.EncodeToString(k.GrubAuthcode) != peExpected(t, "odd.efi") ||
		hex.EncodeToString(k.KernelAuthcode) != peExpected(t, "even.efi") {
		t.Errorf("digests from the .deb differ from the files': %+v", k)
	}
	k2, err := BootChain(context.Background(), BootChainFiles{Shim: debFile + ":/boot/vmlinuz-6.1.0-test", Grub: debFile, Kernel: debFile,
		Initrd: pefix("odd.efi"), Cmdline: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(k2.ShimAuthcode) != peExpected(t, "even.efi") {
		t.Error("PKG.deb:/member did not pick the named member")
	}
}

func TestAddKernelAndMerge(t *testing.T) {
	sb, err := generateFrom(t, "binary_bios_measurements-secureboot", MBGenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := generateFrom(t, "mb_log.b64", MBGenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nosb, err := generateFrom(t, "binary_bios_measurements", MBGenerateOptions{WithoutSecureBoot: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := MergeMBRefstates(sb, cs, sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Kernels) != 2 || len(m.ScrtmAndBios) != 2 {
		t.Errorf("merged: %d kernels, %d firmware; want 2 and 2", len(m.Kernels), len(m.ScrtmAndBios))
	}
	// Subset-checked lists are united, dbx intersected.
	if want := len(unionSigs(unionSigs(nil, sb.DB), cs.DB)); len(m.DB) != want {
		t.Errorf("db: %d entries, want %d", len(m.DB), want)
	}
	for _, s := range m.DBX {
		if !containsSig(sb.DBX, s) || !containsSig(cs.DBX, s) {
			t.Errorf("dbx entry %s is not in both inputs", s.Owner)
		}
	}
	if _, err := m.Marshal(); err != nil {
		t.Fatal(err)
	}
	if _, err := MergeMBRefstates(sb, nosb); err == nil || !strings.Contains(err.Error(), "has_secureboot") {
		t.Errorf("merging SB and non-SB: error = %v", err)
	}
	// Adding the same chain twice keeps one.
	r := sb.Clone()
	if r.AddKernel(sb.Kernels[0]) {
		t.Error("AddKernel added a duplicate")
	}
	if !r.AddKernel(cs.Kernels[0]) || len(r.Kernels) != 2 {
		t.Error("AddKernel did not add a new chain")
	}
	if len(sb.Kernels) != 1 {
		t.Error("Clone shares the kernels slice")
	}
}

func containsSig(s []MBSignature, x MBSignature) bool {
	for _, y := range s {
		if y.Equal(x) {
			return true
		}
	}
	return false
}

func TestMBRefstateWithoutKernels(t *testing.T) {
	log, err := eventlog.Parse(readLog(t, "binary_bios_measurements"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := MBRefstateWithoutKernels(log)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasSecureBoot || len(r.Kernels) != 0 || len(r.DBX) != 460 {
		t.Errorf("has_secureboot %v, %d kernels, %d dbx", r.HasSecureBoot, len(r.Kernels), len(r.DBX))
	}
	// Event 26 is a FvVol/FvFile application (shared reference §13.2).
	if len(r.FirmwareApps) != 1 || hex.EncodeToString(r.FirmwareApps[0].SHA256()) != hex.EncodeToString(log.Events[25].Digest("sha256")) {
		t.Errorf("firmware_apps = %v, want the digest of event 26", r.FirmwareApps)
	}
	if _, err := r.Marshal(); err == nil || !strings.Contains(err.Error(), "no boot chain") {
		t.Errorf("Marshal without kernels: %v", err)
	}
}

// RPM members are read through digests/rpm and checked against the
// header's digests; expected values from fixtures/rpm/gzip-sha256.sums.
func TestBootChainRPM(t *testing.T) {
	pkg := filepath.Join("..", "fixtures", "rpm", "gzip-sha256.rpm")
	k, err := BootChain(context.Background(), BootChainFiles{Shim: pefix("odd.efi"), Grub: pefix("odd.efi"), Kernel: pefix("odd.efi"),
		Initrd: pkg + ":/usr/share/zest/numbers.txt"})
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join("..", "fixtures", "rpm", "gzip-sha256.sums"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(k.InitrdPlain) + "  /usr/share/zest/numbers.txt"; !strings.Contains(string(sums), want) {
		t.Errorf("initrd from rpm: %x not in gzip-sha256.sums", k.InitrdPlain)
	}
	_, err = BootChain(context.Background(), BootChainFiles{Shim: pkg, Grub: pefix("odd.efi"), Kernel: pefix("odd.efi"), Initrd: pefix("odd.efi")})
	if err == nil || !strings.Contains(err.Error(), "shim: rpm: ") || !strings.Contains(err.Error(), "no matching regular file") {
		t.Errorf("rpm without shim: %v", err)
	}
	_, err = BootChain(context.Background(), BootChainFiles{Shim: pkg + ":/usr/share/zest/numbers.txt", Grub: pefix("odd.efi"), Kernel: pefix("odd.efi"), Initrd: pefix("odd.efi")})
	if err == nil || !strings.Contains(err.Error(), "shim: ") {
		t.Errorf("rpm text file as shim: %v", err)
	}
}
