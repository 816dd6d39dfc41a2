package eventlog

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

func eventAt(t *testing.T, l *Log, index int) *Event {
	t.Helper()
	for i := range l.Events {
		if l.Events[i].Index == index {
			return &l.Events[i]
		}
	}
	t.Fatalf("no event %d", index)
	return nil
}

func TestGUID(t *testing.T) {
	b := unhex(t, "61dfe48bca93d211aa0d00e098032b8c")
	if got := GUID(b).String(); got != "8be4df61-93ca-11d2-aa0d-00e098032b8c" || GUID(b) != GlobalVariableGUID {
		t.Errorf("GUID = %s", got)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "zbe4df61-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

// Values from tcg-event-log.md §11.1/§11.2 and keylime-mb-refstate.md §13.
func TestDecodeFixtures(t *testing.T) {
	ub := mustParse(t, "ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
	if e := eventAt(t, ub, 1); e.Offset != 73 || e.PCR != 0 {
		t.Errorf("event 1 offset %d", e.Offset)
	} else if s, err := CRTMVersion(e); err != nil || s != "GCE Virtual Firmware v1" {
		t.Errorf("CRTMVersion = %q %v", s, err)
	} else if hex.EncodeToString(e.Digest(digests.SHA256)) != "d0fcf11a32a8fbf5a4e1a58cd74dd2357d07e7503b5b6afd5a7989a98e17be7f" || !DigestMatchesData(e, digests.SHA256) {
		t.Errorf("event 1 digest %x", e.Digest(digests.SHA256))
	}
	v, err := ParseVariable(eventAt(t, ub, 3))
	if err != nil || v.VendorGUID != GlobalVariableGUID || v.Name != "SecureBoot" || string(v.Data) != "\x00" {
		t.Errorf("SecureBoot = %+v %v", v, err)
	}
	if s, _ := IPLString(eventAt(t, ub, 30)); s != "grub_cmd: set prefix=(hd0,gpt1)/boot/grub" {
		t.Errorf("IPL 30 = %q", s)
	}
	if s, _ := IPLString(eventAt(t, ub, 95)); s != "/boot/vmlinuz-5.11.0-1006-gcp" {
		t.Errorf("IPL 95 = %q", s)
	}
	if s, _ := ActionString(eventAt(t, ub, 104)); s != "Exit Boot Services Invocation" {
		t.Errorf("action 104 = %q", s)
	}
	im, err := ParseImageLoad(eventAt(t, ub, 23))
	if err != nil || im.PathErr != nil || im.Length != 0xE90D0 || im.FilePath() != `\EFI\ubuntu\shimx64.efi` ||
		!strings.HasPrefix(im.Text(), "Path(2,1,") || !strings.HasSuffix(im.Text(), `/\EFI\ubuntu\shimx64.efi`) {
		t.Errorf("shim image = %+v %q %v", im, im.Text(), err)
	}
	if im, _ := ParseImageLoad(eventAt(t, ub, 27)); im.Text() != `\EFI\ubuntu\grubx64.efi` {
		t.Errorf("grub path %q", im.Text())
	}
	if v, err := ParseVariable(eventAt(t, ub, 26)); err != nil || v.VendorGUID != ShimLockGUID || v.Name != "SbatLevel" || string(v.Data) != "sbat,1,2021030218\n" {
		t.Errorf("SbatLevel = %+v %v", v, err)
	}
	if k, err := Separator(eventAt(t, ub, 8), digests.SHA256); k != SeparatorNormal || err != nil {
		t.Errorf("separator = %s %v", k, err)
	}

	lnv := mustParse(t, "binary_bios_measurements")
	na, err := ParseNoAction(eventAt(t, lnv, 1))
	if err != nil || na.Signature != "StartupLocality" || na.StartupLocality == nil || *na.StartupLocality != 3 {
		t.Errorf("NoAction = %+v %v", na, err)
	}
	if s, _ := CRTMVersion(eventAt(t, lnv, 3)); s != "N40ET41W " {
		t.Errorf("CRTM %q", s)
	}
	if fb, err := ParseFirmwareBlob(eventAt(t, lnv, 4)); err != nil || fb.Base != 0xFFF00000 || fb.Length != 0x59D0 {
		t.Errorf("blob 4 = %+v %v", fb, err)
	}
	if fb, _ := ParseFirmwareBlob(eventAt(t, lnv, 5)); fb.Base != 0xFFC00000 || fb.Length != 0x7E800 {
		t.Errorf("blob 5 = %+v", fb)
	}
	if im, _ := ParseImageLoad(eventAt(t, lnv, 26)); im.Text() != "FvVol(8fc151ae-c96f-4bc9-8c33-107992c7735b)/FvFile(821aca26-29ea-4993-839f-597fc021708d)" || im.FilePath() != "" {
		t.Errorf("FV app = %q", im.Text())
	}
	dbx, _ := ParseVariable(eventAt(t, lnv, 16))
	sigs, err := ParseSignatureLists(dbx.Data)
	if err != nil || dbx.Name != "dbx" || len(sigs) != 460 {
		t.Errorf("Lenovo dbx: %d %v", len(sigs), err)
	}

	sb := mustParse(t, "binary_bios_measurements-secureboot")
	pk, _ := ParseVariable(eventAt(t, sb, 5))
	sigs, err = ParseSignatureLists(pk.Data)
	if err != nil || len(sigs) != 1 || sigs[0].Type != CertX509GUID || sigs[0].Owner.String() != "a0baa8a3-041d-48a8-bc87-c36d121b5e3d" ||
		!strings.HasPrefix(hex.EncodeToString(sigs[0].Data), "308203a030820288") || cap(sigs[0].Data) != 948-16 {
		t.Errorf("PK = %+v %v", sigs, err)
	}
	dbx, _ = ParseVariable(eventAt(t, sb, 8))
	sigs, err = ParseSignatureLists(dbx.Data)
	if err != nil || len(sigs) != 371 || sigs[0].Type != CertSHA256GUID || len(sigs[0].Data) != 32 {
		t.Errorf("dbx = %d %v", len(sigs), err)
	}
	vdb, _ := ParseVariable(eventAt(t, sb, 34))
	if owner, der, err := ParseSignatureData(vdb.Data); err != nil || vdb.Name != "vendor_db" || owner.String() != "0223eddb-9079-4388-af77-2d65b1c35d3b" || len(der) != 920 {
		t.Errorf("vendor_db = %s %d %v", owner, len(der), err)
	}
	kern, err := ParseImageLoad(eventAt(t, sb, 93))
	if err != nil || len(kern.DevicePath) != 0 || kern.Text() != "" || kern.PathErr != nil {
		t.Errorf("kernel BSA = %+v %v", kern, err)
	}
	if hex.EncodeToString(eventAt(t, sb, 93).Digest(digests.SHA256)) != "219b8b53c54951cd07a580622e384391bbd9e113448a12ad319903fcafb81e79" {
		t.Error("kernel authenticode digest")
	}
	cmd := eventAt(t, sb, 94)
	s, _ := IPLString(cmd)
	want := sha256.Sum256([]byte(strings.TrimPrefix(s, "kernel_cmdline: ")))
	if !strings.HasPrefix(s, "kernel_cmdline: (hd0,gpt2)/vmlinuz-5.14.0-503.11.1.el9_5.x86_64 root=") ||
		hex.EncodeToString(want[:]) != "55aaa5dc5ea00b720c56c5ed346d06f650e501dfd3e462c43f257db7e7336269" {
		t.Errorf("kernel_cmdline = %q", s)
	}
}

func TestDecodeErrors(t *testing.T) {
	ev := func(typ EventType, data string) *Event {
		return &Event{Index: 5, Offset: 99, Type: typ, Data: []byte(data)}
	}
	u64 := func(v uint64) string { return string(le(v)) }
	g := string(GlobalVariableGUID[:])
	cases := []struct {
		name string
		fn   func() error
		want string
	}{
		{"wrong type", func() error { _, err := CRTMVersion(ev(EV_IPL, "")); return err }, "event 5 at offset 99 (EV_IPL): S-CRTM version: wrong event type"},
		{"blob short", func() error { _, err := ParseFirmwareBlob(ev(EV_EFI_PLATFORM_FIRMWARE_BLOB, "12345")); return err }, "want 16"},
		{"blob2 desc", func() error { _, err := ParseFirmwareBlob(ev(EV_EFI_PLATFORM_FIRMWARE_BLOB2, "\x09abc")); return err }, "too short"},
		{"var short", func() error { _, err := ParseVariable(ev(EV_EFI_VARIABLE_BOOT, g)); return err }, "too short"},
		{"var lengths", func() error {
			_, err := ParseVariable(ev(EV_EFI_VARIABLE_BOOT, g+u64(2)+u64(5)+"A\x00B\x00xy"))
			return err
		}, "do not fill"},
		{"var huge name", func() error {
			_, err := ParseVariable(ev(EV_EFI_VARIABLE_BOOT, g+u64(1<<62)+u64(0)))
			return err
		}, "exceeds"},
		{"image short", func() error { _, err := ParseImageLoad(ev(EV_EFI_BOOT_SERVICES_APPLICATION, "x")); return err }, "too short"},
		{"image path len", func() error {
			_, err := ParseImageLoad(ev(EV_EFI_BOOT_SERVICES_APPLICATION, u64(0)+u64(0)+u64(0)+u64(1<<63)))
			return err
		}, "LengthOfDevicePath"},
		{"locality", func() error { _, err := ParseNoAction(ev(EV_NO_ACTION, "StartupLocality\x00\x03\x03")); return err }, "want 1"},
		{"sep no digest", func() error { _, err := Separator(ev(EV_SEPARATOR, "\x00\x00\x00\x00"), digests.SHA256); return err }, "no sha256 digest"},
		{"esl short", func() error { _, err := ParseSignatureLists([]byte("abc")); return err }, "header needs 28"},
		{"esl size", func() error {
			_, err := ParseSignatureLists(le(CertX509GUID[:], uint32(28), uint32(0), uint32(0)))
			return err
		}, "smaller than an owner GUID"},
		{"esl header", func() error {
			_, err := ParseSignatureLists(le(CertX509GUID[:], uint32(40), uint32(0xFFFFFFF0), uint32(16), make([]byte, 12)))
			return err
		}, "SignatureHeaderSize"},
		{"esl zero", func() error {
			_, err := ParseSignatureLists(le(CertX509GUID[:], uint32(0), uint32(0), uint32(16)))
			return err
		}, "SignatureHeaderSize 0 does not fit"},
		{"esl remainder", func() error {
			_, err := ParseSignatureLists(le(CertX509GUID[:], uint32(45), uint32(0), uint32(16), make([]byte, 17)))
			return err
		}, "not a multiple"},
		{"sigdata", func() error { _, _, err := ParseSignatureData([]byte("x")); return err }, "needs 16"},
	}
	for _, c := range cases {
		if err := c.fn(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// Device paths: bad node length, missing end node, empty path.
	if _, err := ParseDevicePath([]byte{4, 4, 2, 0}); err == nil {
		t.Error("node length 2 accepted")
	}
	if _, err := ParseDevicePath([]byte{4, 4, 4, 0}); err == nil {
		t.Error("missing end node accepted")
	}
	if n, err := ParseDevicePath(nil); n != nil || err != nil {
		t.Error("empty path")
	}
	// Separators: alt-normal, error (by digest), other.
	for _, c := range []struct {
		data, hashed string
		want         SeparatorKind
	}{
		{"\xff\xff\xff\xff", "\xff\xff\xff\xff", SeparatorAltNormal},
		{"firmware error info", "\x01\x00\x00\x00", SeparatorError},
		{"\x00\x00\x00\x00", "x", SeparatorOther},
	} {
		d := sha256.Sum256([]byte(c.hashed))
		e := ev(EV_SEPARATOR, c.data)
		e.Digests = []Digest{{ID: AlgSHA256, Algorithm: digests.SHA256, Value: d[:]}}
		if k, err := Separator(e, digests.SHA256); k != c.want || err != nil {
			t.Errorf("separator %q = %s %v", c.data, k, err)
		}
	}
	if na, err := ParseNoAction(ev(EV_NO_ACTION, "short")); err != nil || string(na.Data) != "short" {
		t.Errorf("short no-action = %+v %v", na, err)
	}
	if !IsHCRTM(ev(EV_EFI_HCRTM_EVENT, "HCRTM")) || IsHCRTM(ev(EV_EFI_HCRTM_EVENT, "X")) {
		t.Error("IsHCRTM")
	}
	if SeparatorKind(9).String() != "SeparatorKind(9)" || SeparatorError.String() != "error" || Format(7).String() != "Format(7)" || FormatCryptoAgile.String() != "crypto-agile" {
		t.Error("String methods")
	}
	if EventType(0x13).String() != "EV_0x00000013" || EV_IPL.String() != "EV_IPL" || FormatSHA1.String() != "sha1" {
		t.Error("String methods")
	}
}
