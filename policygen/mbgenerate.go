package policygen

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
)

// MBGenerateOptions tunes GenerateMBRefstate. The zero value demands a log
// with Secure Boot enabled.
type MBGenerateOptions struct {
	// WithoutSecureBoot accepts a log whose SecureBoot variable is off (or
	// not logged) and records vmlinuz's plain digest instead of the kernel's
	// Authenticode digest (Keylime's -i/--without-secureboot). With Secure
	// Boot on it is ignored, as Keylime does.
	WithoutSecureBoot bool
}

// ErrSecureBootDisabled is returned (wrapped) when a log has Secure Boot off
// and MBGenerateOptions.WithoutSecureBoot is not set.
var ErrSecureBootDisabled = errors.New("the event log has Secure Boot disabled")

// chainloadPrefix starts GRUB's PCR 8 string for `chainloader PATH ARGS`:
// when GRUB chainloads the kernel, that command's arguments (kernel path
// first) are the kernel command line, and there is no "kernel_cmdline: "
// event.
const chainloadPrefix = "grub_cmd: chainloader "

// GenerateMBRefstate derives a refstate from the event log of a golden
// machine exactly as Keylime's create_mb_policy does from tpm2_eventlog's
// output (same values, same sets; see policygen's tests over Keylime's
// fixture logs), with these differences, all errors where Keylime writes an
// unusable refstate or crashes:
//
//   - the log must carry sha256 digests (Keylime writes {} digests and then
//     raises KeyError for a sha1-only log);
//   - an incomplete boot chain (BSA count other than 3-4 with Secure Boot or
//     2 without, no initrd, vmlinuz or kernel_cmdline event, no S-CRTM
//     version) is an error naming what is missing (Keylime writes a refstate
//     its own policy rejects as "lacks fields");
//   - a kernel GRUB chainloaded (a "grub_cmd: chainloader " event in PCR 8
//     and no "kernel_cmdline: " one) is a boot chain too: kernel_cmdline is
//     the chainloader command's arguments, kernel_authcode the third PCR 4
//     application even with Secure Boot off, and without an initrd event
//     in PCR 9 the entry has initrd_unmeasured (a zest extension; Linux
//     6.1's EFI stub does not measure an initrd= it loads) instead of
//     initrd_plain_sha256: zest's evaluator then requires that no initrd
//     is logged, and Keylime rejects the entry;
//   - PK/KEK/db/dbx data that is not a valid EFI_SIGNATURE_LIST sequence is
//     an error naming the event (tpm2_eventlog prints hex, Keylime drops it).
//
// The log is the operator's own golden input and is not verified against a
// quote; events are read as logged.
func GenerateMBRefstate(log *eventlog.Log, opts MBGenerateOptions) (*MBRefstate, error) {
	return generate(log, opts, true)
}

// MBRefstateWithoutKernels takes from a golden event log everything but the
// boot chain: Secure Boot state, firmware, PK/KEK/db/dbx, vendor_db and
// MokList digests. Kernels is empty; add boot chains with AddKernel (and
// BootChain) before Marshal. Secure Boot may be on or off.
func MBRefstateWithoutKernels(log *eventlog.Log) (*MBRefstate, error) {
	return generate(log, MBGenerateOptions{WithoutSecureBoot: true}, false)
}

func generate(log *eventlog.Log, opts MBGenerateOptions, withKernels bool) (*MBRefstate, error) {
	if log == nil || len(log.Events) == 0 {
		return nil, errors.New("refstate: the event log has no events")
	}
	if !log.HasBank(digests.SHA256) {
		return nil, fmt.Errorf("refstate: the event log has no sha256 digests; a refstate holds sha256 values only")
	}
	uefi := false
	for i := range log.Events {
		if log.Events[i].Type > eventlog.EV_EFI_EVENT_BASE {
			uefi = true
			break
		}
	}
	if !uefi {
		return nil, errors.New("refstate: the event log records no UEFI events (a legacy BIOS boot, e.g. SeaBIOS); a measured-boot refstate describes UEFI boots")
	}
	r := &MBRefstate{}
	sb, err := secureBootEnabled(log)
	if err != nil {
		return nil, err
	}
	r.HasSecureBoot = sb
	if !sb && !opts.WithoutSecureBoot {
		return nil, fmt.Errorf("refstate: %w", ErrSecureBootDisabled)
	}
	sha := func(e *eventlog.Event) Hex { return Hex(e.Digest(digests.SHA256)) }
	var fw MBFirmware
	fw.PlatformFirmware = []MBDigest{}
	keys := map[string]*[]MBSignature{"pk": &r.PK, "kek": &r.KEK, "db": &r.DB, "dbx": &r.DBX}
	var bsas []*eventlog.Event
	var initrd, vmlinuz, cmdline, chainload *eventlog.Event
	for i := range log.Events {
		e := &log.Events[i]
		switch e.Type {
		case eventlog.EV_S_CRTM_VERSION:
			if fw.SCRTM == nil {
				fw.SCRTM = MBDigest{"sha256": sha(e)}
			}
		case eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB2:
			fw.PlatformFirmware = append(fw.PlatformFirmware, MBDigest{"sha256": sha(e)})
		case eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG:
			v, err := eventlog.ParseVariable(e)
			if err != nil {
				continue // tpm2_eventlog prints it as hex; Keylime skips it
			}
			dst, ok := keys[strings.ToLower(v.Name)]
			if !ok {
				continue
			}
			// The last event of each name wins, as in Keylime.
			sigs, err := eventlog.ParseSignatureLists(v.Data)
			if err != nil {
				return nil, fmt.Errorf("refstate: event %d at offset %d (%s %s): %w", e.Index, e.Offset, e.Type, v.Name, err)
			}
			*dst = signatures(sigs)
		case eventlog.EV_EFI_VARIABLE_AUTHORITY:
			v, err := eventlog.ParseVariable(e)
			if err != nil || strings.ToLower(v.Name) != "vendor_db" {
				continue
			}
			owner, data, err := eventlog.ParseSignatureData(v.Data)
			if err != nil {
				return nil, fmt.Errorf("refstate: event %d at offset %d (vendor_db authority): %w", e.Index, e.Offset, err)
			}
			r.VendorDB = append(r.VendorDB, MBSignature{Owner: owner.String(), Data: Hex(data)})
		case eventlog.EV_IPL:
			s, _ := eventlog.IPLString(e)
			switch {
			case s == "MokList":
				r.MokDig = append(r.MokDig, MBDigest{"sha256": sha(e)})
			case s == "MokListX":
				r.MokXDig = append(r.MokXDig, MBDigest{"sha256": sha(e)})
			case e.PCR == 9 && initrd == nil && (strings.Contains(s, "initrd") || strings.Contains(s, "initramfs")):
				initrd = e
			}
			if e.PCR == 9 && vmlinuz == nil && strings.Contains(s, "vmlinuz") {
				vmlinuz = e
			}
			if e.PCR == 8 && cmdline == nil && strings.Contains(s, "kernel_cmdline") {
				cmdline = e
			}
			if e.PCR == 8 && chainload == nil && strings.HasPrefix(s, chainloadPrefix) {
				chainload = e
			}
		case eventlog.EV_EFI_BOOT_SERVICES_APPLICATION:
			if FirmwareApp(e) {
				// Keylime skips these; zest also pins their digest.
				if d := (MBDigest{"sha256": sha(e)}); !slices.ContainsFunc(r.FirmwareApps, d.Equal) {
					r.FirmwareApps = append(r.FirmwareApps, d)
				}
				continue
			}
			bsas = append(bsas, e)
		}
	}
	if fw.SCRTM == nil {
		return nil, errors.New("refstate: the event log has no EV_S_CRTM_VERSION event")
	}
	r.ScrtmAndBios = []MBFirmware{fw}
	if !withKernels {
		r.normalize()
		return r, nil
	}

	var k MBKernel
	var missing []string
	if sb {
		if len(bsas) != 3 && len(bsas) != 4 {
			return nil, fmt.Errorf("refstate: expected 3 UEFI applications in PCR 4 (shim, GRUB, kernel) with Secure Boot on, the log has %d%s", len(bsas), bsaList(bsas))
		}
		k.KernelAuthcode = sha(bsas[2])
	} else if chainload != nil && cmdline == nil && len(bsas) == 3 {
		// GRUB chainloaded the kernel: the firmware's LoadImage measured it.
		k.KernelAuthcode = sha(bsas[2])
	} else if len(bsas) != 2 {
		return nil, fmt.Errorf("refstate: expected 2 UEFI applications in PCR 4 (shim, GRUB) with Secure Boot off, the log has %d%s", len(bsas), bsaList(bsas))
	}
	k.ShimAuthcode, k.GrubAuthcode = sha(bsas[0]), sha(bsas[1])
	switch {
	case initrd != nil:
		k.InitrdPlain = sha(initrd)
	case chainload != nil && cmdline == nil:
		// A chainloaded kernel's stub loads the initrd itself; Linux 6.1
		// does not measure it. The entry says so.
		k.InitrdUnmeasured = true
	default:
		missing = append(missing, "an initrd (PCR 9 EV_IPL naming initrd or initramfs)")
	}
	if cmdline == nil && chainload != nil {
		s, _ := eventlog.IPLString(chainload)
		k.KernelCmdline = PythonRegexpEscape(strings.TrimPrefix(s, chainloadPrefix))
	}
	if !sb {
		if vmlinuz != nil {
			k.VmlinuzPlain = sha(vmlinuz)
		} else {
			missing = append(missing, "a kernel (PCR 9 EV_IPL naming vmlinuz)")
		}
	}
	switch {
	case cmdline == nil && chainload != nil:
	case cmdline != nil:
		s, _ := eventlog.IPLString(cmdline)
		// Keylime slices len("kernel_cmdline: ") characters off the string
		// wherever "kernel_cmdline" occurs in it.
		rs := []rune(s)
		if len(rs) > 16 {
			k.KernelCmdline = PythonRegexpEscape(string(rs[16:]))
		}
	default:
		missing = append(missing, "a kernel command line (PCR 8 EV_IPL \"kernel_cmdline: ...\")")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("refstate: the event log's boot chain is incomplete: missing %s", strings.Join(missing, "; "))
	}
	r.Kernels = []MBKernel{k}
	r.normalize()
	return r, nil
}

// secureBootEnabled reads the first SecureBoot EV_EFI_VARIABLE_DRIVER_CONFIG
// event; none means off, as in Keylime.
func secureBootEnabled(log *eventlog.Log) (bool, error) {
	for i := range log.Events {
		e := &log.Events[i]
		if e.Type != eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG {
			continue
		}
		v, err := eventlog.ParseVariable(e)
		if err != nil || v.Name != "SecureBoot" {
			continue
		}
		return len(v.Data) > 0 && v.Data[0] == 1, nil
	}
	return false, nil
}

// FirmwareApp reports whether a PCR 4 application's logged device path
// starts FvVol(...)/FvFile(...), i.e. names a firmware-internal application
// (boot menu, UI app). Keylime's generator skips those (workaround from
// Lernstick-Bridge). The device path is event data, not covered by the
// event's digest.
func FirmwareApp(e *eventlog.Event) bool {
	im, err := eventlog.ParseImageLoad(e)
	if err != nil || len(im.Nodes) < 2 {
		return false
	}
	n0, n1 := im.Nodes[0], im.Nodes[1]
	return n0.Type == 4 && n0.SubType == 7 && len(n0.Data) == 16 && n1.Type == 4 && n1.SubType == 6 && len(n1.Data) == 16
}

func bsaList(bsas []*eventlog.Event) string {
	if len(bsas) == 0 {
		return ""
	}
	var s []string
	for _, e := range bsas {
		desc := fmt.Sprintf("event %d", e.Index)
		if im, err := eventlog.ParseImageLoad(e); err == nil && im.Text() != "" {
			desc += " " + im.Text()
		}
		s = append(s, desc)
	}
	return " (" + strings.Join(s, "; ") + ")"
}

func signatures(sigs []eventlog.Signature) []MBSignature {
	out := make([]MBSignature, len(sigs))
	for i, s := range sigs {
		out[i] = MBSignature{Owner: s.Owner.String(), Data: Hex(s.Data)}
	}
	return out
}
