package policygen

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/schema"
)

// MBRefstate is a Keylime measured-boot reference state ("refstate"), the
// document Keylime's `example` measured-boot policy reads and
// `keylime-policy create measured-boot` writes (keylime 7.14.3,
// keylime/policy/create_mb_policy.py). Field names and JSON shapes are
// Keylime's, so a stock Keylime verifier accepts what zest writes.
//
// Every list is an alternative set except PlatformFirmware (ordered) and
// DBX (the logged dbx must contain every entry).
type MBRefstate struct {
	// HasSecureBoot says whether the SecureBoot variable was logged as
	// enabled. Keylime reads an absent key as true; zest always writes it.
	HasSecureBoot bool
	// ScrtmAndBios lists firmware alternatives: S-CRTM version digest and
	// the platform firmware blob digests in log order.
	ScrtmAndBios []MBFirmware
	// PK, KEK, DB and DBX are the UEFI Secure Boot variables' signatures
	// flattened over all EFI_SIGNATURE_LISTs (the list type is dropped, as
	// Keylime does).
	PK, KEK, DB, DBX []MBSignature
	// VendorDB lists shim's built-in vendor certificates (EV_EFI_VARIABLE_AUTHORITY
	// "vendor_db"); absent in the JSON means empty.
	VendorDB []MBSignature
	// MokDig and MokXDig are digests of shim's PCR 14 MokList / MokListX.
	MokDig, MokXDig []MBDigest
	// Kernels lists boot chain alternatives.
	Kernels []MBKernel
	// FirmwareApps (JSON "firmware_apps", a zest extension Keylime
	// ignores) lists digests of firmware-internal PCR 4 applications
	// (device path FvVol(...)/FvFile(...)) the golden machine ran. The
	// device path is not covered by the event digest, so zest's evaluator
	// accepts such an application only when its digest is listed here.
	FirmwareApps []MBDigest
}

// MBFirmware is one scrtm_and_bios alternative.
type MBFirmware struct {
	SCRTM            MBDigest   `json:"scrtm"`
	PlatformFirmware []MBDigest `json:"platform_firmware"`
}

// MBKernel is one boot chain: shim, GRUB, kernel (Authenticode digests as
// firmware and shim measure them into PCR 4), GRUB's PCR 9 file hashes and
// the PCR 8 kernel command line.
type MBKernel struct {
	// KernelAuthcode is the kernel's Authenticode digest, measured by shim
	// when GRUB verifies the kernel through it (Secure Boot on). Required
	// when the refstate has Secure Boot, optional otherwise.
	KernelAuthcode Hex `json:"kernel_authcode_sha256,omitempty"`
	ShimAuthcode   Hex `json:"shim_authcode_sha256"`
	GrubAuthcode   Hex `json:"grub_authcode_sha256"`
	// InitrdPlain is the sha256 of the initrd file GRUB (or the Linux EFI
	// stub) measured into PCR 9. Required unless InitrdUnmeasured.
	InitrdPlain Hex `json:"initrd_plain_sha256,omitempty"`
	// InitrdUnmeasured (JSON "initrd_unmeasured", a zest extension) says
	// the boot chain measures no initrd, and the evaluator then requires
	// that none is logged: GRUB's chainloader starts the kernel through
	// the firmware's LoadImage, and Linux 6.1's stub loads initrd= without
	// measuring it, so the initrd is covered by no PCR (only IMA sees the
	// files inside it). InitrdPlain is then absent, and Keylime's example
	// policy rejects the entry as lacking a field.
	InitrdUnmeasured bool `json:"initrd_unmeasured,omitempty"`
	// VmlinuzPlain is the sha256 of the vmlinuz file GRUB measured into
	// PCR 9. Required when the refstate has Secure Boot off.
	VmlinuzPlain Hex `json:"vmlinuz_plain_sha256,omitempty"`
	// KernelCmdline is a Python regular expression matched (fullmatch)
	// against the text after "kernel_cmdline: " in GRUB's PCR 8 event.
	// Generators write the command line escaped with PythonRegexpEscape.
	KernelCmdline string `json:"kernel_cmdline"`
}

// MBSignature is an EFI_SIGNATURE_DATA: owner GUID in canonical lower-case
// text and the data after the owner (a DER certificate or a hash).
type MBSignature struct {
	Owner string `json:"SignatureOwner"`
	Data  Hex    `json:"SignatureData"`
}

// MBDigest maps a tpm2_eventlog algorithm name (sha1, sha256, sha384,
// sha512, sm3_256) to a digest. Keylime's generator writes sha256 only.
type MBDigest map[string]Hex

// SHA256 returns d's sha256 digest, or nil.
func (d MBDigest) SHA256() []byte { return d["sha256"] }

// Equal reports whether d and o hold the same algorithms and digests.
func (d MBDigest) Equal(o MBDigest) bool {
	if len(d) != len(o) {
		return false
	}
	for k, v := range d {
		if !bytes.Equal(v, o[k]) {
			return false
		}
	}
	return true
}

// Matches reports whether a digest in bank alg equals d's digest for that
// algorithm (Keylime's DigestsTest for one bank).
func (d MBDigest) Matches(alg digests.Algorithm, got []byte) bool {
	want, ok := d[MBAlgName(alg)]
	return ok && got != nil && bytes.Equal(want, got)
}

// MBAlgName is the name tpm2_eventlog prints for alg (and a refstate digest
// object uses as key): sm3 is "sm3_256".
func MBAlgName(alg digests.Algorithm) string {
	if alg == digests.SM3 {
		return "sm3_256"
	}
	return string(alg)
}

func mbAlgorithm(name string) (digests.Algorithm, bool) {
	switch name {
	case "sha1":
		return digests.SHA1, true
	case "sha256":
		return digests.SHA256, true
	case "sha384":
		return digests.SHA384, true
	case "sha512":
		return digests.SHA512, true
	case "sm3_256":
		return digests.SM3, true
	}
	return "", false
}

// Hex is a byte string written as "0x" + lower-case hex, Keylime's form for
// every refstate digest and SignatureData.
type Hex []byte

// String returns "0x" + lower-case hex.
func (h Hex) String() string { return "0x" + hex.EncodeToString(h) }

// MarshalJSON implements json.Marshaler.
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseHex(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHex parses "0x" + lower-case hex.
func ParseHex(s string) (Hex, error) {
	rest, ok := strings.CutPrefix(s, "0x")
	if !ok || rest == "" || strings.ToLower(rest) != rest {
		return nil, fmt.Errorf("%q is not 0x followed by lower-case hex digits", s)
	}
	v, err := hex.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%q is not 0x followed by lower-case hex digits", s)
	}
	return v, nil
}

// wireMB is the JSON shape; has_secureboot is a pointer so that an absent
// key can take Keylime's default (true).
type wireMB struct {
	HasSecureBoot *bool         `json:"has_secureboot"`
	ScrtmAndBios  []MBFirmware  `json:"scrtm_and_bios"`
	PK            []MBSignature `json:"pk"`
	KEK           []MBSignature `json:"kek"`
	DB            []MBSignature `json:"db"`
	DBX           []MBSignature `json:"dbx"`
	VendorDB      []MBSignature `json:"vendor_db"`
	MokDig        []MBDigest    `json:"mokdig"`
	MokXDig       []MBDigest    `json:"mokxdig"`
	Kernels       []MBKernel    `json:"kernels"`
	FirmwareApps  []MBDigest    `json:"firmware_apps,omitempty"`
}

// MBValidationError carries every schema violation found in a refstate.
type MBValidationError struct {
	File   string
	Errors []schema.Error
}

func (e *MBValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: not a valid measured-boot refstate (%d error", e.File, len(e.Errors))
	if len(e.Errors) != 1 {
		b.WriteString("s")
	}
	b.WriteString(")")
	for i, se := range e.Errors {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Errors)-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(se.Error())
	}
	return b.String()
}

// ParseMBRefstate validates data against zest's refstate schema
// (schema/mb_refstate_v1.cue) and decodes it. name is used in errors.
// Keylime's defaults apply: an absent has_secureboot is true, an absent
// vendor_db empty.
func ParseMBRefstate(data []byte, name string) (*MBRefstate, error) {
	if errs := schema.Validate(schema.MBRefstate, data, schema.Options{}); len(errs) > 0 {
		return nil, &MBValidationError{File: name, Errors: errs}
	}
	var w wireMB
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var errs []schema.Error
	for i, k := range w.Kernels {
		if err := k.initrdError(); err != "" {
			errs = append(errs, schema.Error{Path: fmt.Sprintf("$.kernels[%d].initrd_plain_sha256", i), Msg: err})
		}
	}
	if len(errs) > 0 {
		return nil, &MBValidationError{File: name, Errors: errs}
	}
	r := &MBRefstate{
		HasSecureBoot: w.HasSecureBoot == nil || *w.HasSecureBoot,
		ScrtmAndBios:  w.ScrtmAndBios,
		PK:            w.PK, KEK: w.KEK, DB: w.DB, DBX: w.DBX, VendorDB: w.VendorDB,
		MokDig: w.MokDig, MokXDig: w.MokXDig,
		Kernels: w.Kernels, FirmwareApps: w.FirmwareApps,
	}
	r.normalize()
	return r, nil
}

// initrdError says what is wrong with k's initrd fields, or "".
func (k *MBKernel) initrdError() string {
	switch {
	case k.InitrdUnmeasured && k.InitrdPlain != nil:
		return "given although initrd_unmeasured is true"
	case !k.InitrdUnmeasured && len(k.InitrdPlain) != 32:
		return "required: a 32-byte sha256 digest (or initrd_unmeasured: true, a zest extension, for a boot that measures no initrd)"
	}
	return ""
}

// normalize replaces nil lists by empty ones so that Marshal writes [].
func (r *MBRefstate) normalize() {
	nonNil := func(s *[]MBSignature) {
		if *s == nil {
			*s = []MBSignature{}
		}
	}
	nonNil(&r.PK)
	nonNil(&r.KEK)
	nonNil(&r.DB)
	nonNil(&r.DBX)
	nonNil(&r.VendorDB)
	if r.MokDig == nil {
		r.MokDig = []MBDigest{}
	}
	if r.MokXDig == nil {
		r.MokXDig = []MBDigest{}
	}
	if r.ScrtmAndBios == nil {
		r.ScrtmAndBios = []MBFirmware{}
	}
	for i := range r.ScrtmAndBios {
		if r.ScrtmAndBios[i].PlatformFirmware == nil {
			r.ScrtmAndBios[i].PlatformFirmware = []MBDigest{}
		}
	}
	if r.Kernels == nil {
		r.Kernels = []MBKernel{}
	}
}

// Check reports what makes r unusable by Keylime's example policy (and by
// zest's evaluator): the kernel fields Secure Boot mode requires, at least
// one firmware and one kernel alternative, digests of the right length.
// Marshal output of a checked refstate passes ParseMBRefstate.
func (r *MBRefstate) Check() error {
	var errs []error
	if len(r.ScrtmAndBios) == 0 {
		errs = append(errs, errors.New("scrtm_and_bios: no firmware alternative"))
	}
	if len(r.Kernels) == 0 {
		errs = append(errs, errors.New("kernels: no boot chain alternative"))
	}
	for i, k := range r.Kernels {
		at := fmt.Sprintf("kernels[%d]", i)
		need := []struct {
			name string
			v    Hex
		}{{"shim_authcode_sha256", k.ShimAuthcode}, {"grub_authcode_sha256", k.GrubAuthcode}}
		if r.HasSecureBoot {
			need = append(need, struct {
				name string
				v    Hex
			}{"kernel_authcode_sha256", k.KernelAuthcode})
		} else {
			need = append(need, struct {
				name string
				v    Hex
			}{"vmlinuz_plain_sha256", k.VmlinuzPlain})
		}
		for _, n := range need {
			if len(n.v) != 32 {
				errs = append(errs, fmt.Errorf("%s.%s: %d bytes, want a 32-byte sha256 digest", at, n.name, len(n.v)))
			}
		}
		if err := k.initrdError(); err != "" {
			errs = append(errs, fmt.Errorf("%s.initrd_plain_sha256: %s", at, err))
		}
		for _, opt := range []struct {
			name string
			v    Hex
		}{{"kernel_authcode_sha256", k.KernelAuthcode}, {"vmlinuz_plain_sha256", k.VmlinuzPlain}} {
			if opt.v != nil && len(opt.v) != 32 {
				errs = append(errs, fmt.Errorf("%s.%s: %d bytes, want a 32-byte sha256 digest", at, opt.name, len(opt.v)))
			}
		}
	}
	checkDigest := func(at string, d MBDigest) {
		if len(d) == 0 {
			errs = append(errs, fmt.Errorf("%s: empty digest object", at))
		}
		for name, v := range d {
			alg, ok := mbAlgorithm(name)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown algorithm %q", at, name))
			} else if len(v) != alg.Size() {
				errs = append(errs, fmt.Errorf("%s.%s: %d bytes, want %d", at, name, len(v), alg.Size()))
			}
		}
	}
	for i, f := range r.ScrtmAndBios {
		checkDigest(fmt.Sprintf("scrtm_and_bios[%d].scrtm", i), f.SCRTM)
		for j, d := range f.PlatformFirmware {
			checkDigest(fmt.Sprintf("scrtm_and_bios[%d].platform_firmware[%d]", i, j), d)
		}
	}
	for i, d := range r.MokDig {
		checkDigest(fmt.Sprintf("mokdig[%d]", i), d)
	}
	for i, d := range r.MokXDig {
		checkDigest(fmt.Sprintf("mokxdig[%d]", i), d)
	}
	for i, d := range r.FirmwareApps {
		checkDigest(fmt.Sprintf("firmware_apps[%d]", i), d)
	}
	return errors.Join(errs...)
}

// Marshal encodes r deterministically: Keylime's key order, digest objects
// sorted by algorithm, two-space indentation, a final newline. It fails if
// Check does.
func (r *MBRefstate) Marshal() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("refstate: %w", err)
	}
	c := *r
	c.normalize()
	sb := c.HasSecureBoot
	w := wireMB{HasSecureBoot: &sb, ScrtmAndBios: c.ScrtmAndBios, PK: c.PK, KEK: c.KEK, DB: c.DB, DBX: c.DBX,
		VendorDB: c.VendorDB, MokDig: c.MokDig, MokXDig: c.MokXDig, Kernels: c.Kernels, FirmwareApps: c.FirmwareApps}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Clone returns a deep copy.
func (r *MBRefstate) Clone() *MBRefstate {
	c := &MBRefstate{HasSecureBoot: r.HasSecureBoot}
	sigs := func(s []MBSignature) []MBSignature {
		out := make([]MBSignature, len(s))
		for i, x := range s {
			out[i] = MBSignature{Owner: x.Owner, Data: slices.Clone(x.Data)}
		}
		return out
	}
	c.PK, c.KEK, c.DB, c.DBX, c.VendorDB = sigs(r.PK), sigs(r.KEK), sigs(r.DB), sigs(r.DBX), sigs(r.VendorDB)
	c.MokDig, c.MokXDig = cloneDigests(r.MokDig), cloneDigests(r.MokXDig)
	if r.FirmwareApps != nil {
		c.FirmwareApps = cloneDigests(r.FirmwareApps)
	}
	for _, f := range r.ScrtmAndBios {
		c.ScrtmAndBios = append(c.ScrtmAndBios, MBFirmware{SCRTM: f.SCRTM.clone(), PlatformFirmware: cloneDigests(f.PlatformFirmware)})
	}
	for _, k := range r.Kernels {
		c.Kernels = append(c.Kernels, k.clone())
	}
	c.normalize()
	return c
}

func (d MBDigest) clone() MBDigest {
	if d == nil {
		return nil
	}
	out := make(MBDigest, len(d))
	for k, v := range d {
		out[k] = slices.Clone(v)
	}
	return out
}

func cloneDigests(ds []MBDigest) []MBDigest {
	out := make([]MBDigest, len(ds))
	for i, d := range ds {
		out[i] = d.clone()
	}
	return out
}

func (k MBKernel) clone() MBKernel {
	return MBKernel{KernelAuthcode: slices.Clone(k.KernelAuthcode), ShimAuthcode: slices.Clone(k.ShimAuthcode),
		GrubAuthcode: slices.Clone(k.GrubAuthcode), InitrdPlain: slices.Clone(k.InitrdPlain),
		VmlinuzPlain: slices.Clone(k.VmlinuzPlain), KernelCmdline: k.KernelCmdline, InitrdUnmeasured: k.InitrdUnmeasured}
}

// Equal reports whether two kernel entries are identical.
func (k MBKernel) Equal(o MBKernel) bool {
	return bytes.Equal(k.KernelAuthcode, o.KernelAuthcode) && bytes.Equal(k.ShimAuthcode, o.ShimAuthcode) &&
		bytes.Equal(k.GrubAuthcode, o.GrubAuthcode) && bytes.Equal(k.InitrdPlain, o.InitrdPlain) && k.InitrdUnmeasured == o.InitrdUnmeasured &&
		bytes.Equal(k.VmlinuzPlain, o.VmlinuzPlain) && k.KernelCmdline == o.KernelCmdline
}

// Equal reports whether two firmware alternatives are identical (same
// S-CRTM, same blobs in the same order).
func (f MBFirmware) Equal(o MBFirmware) bool {
	return f.SCRTM.Equal(o.SCRTM) && slices.EqualFunc(f.PlatformFirmware, o.PlatformFirmware, MBDigest.Equal)
}

// Equal reports whether two signatures are identical.
func (s MBSignature) Equal(o MBSignature) bool {
	return s.Owner == o.Owner && bytes.Equal(s.Data, o.Data)
}

// pythonSpecial is what Python >= 3.7 re.escape escapes.
const pythonSpecial = "()[]{}?*+-|^$\\.&~# \t\n\r\v\f"

// PythonRegexpEscape is Python's re.escape (3.7+), which Keylime's generator
// applies to the kernel command line: a backslash before each of
// ()[]{}?*+-|^$\.&~# and whitespace. Go's regexp (RE2) accepts the result.
func PythonRegexpEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && strings.ContainsRune(pythonSpecial, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
