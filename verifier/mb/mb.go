// Package mb evaluates a verified UEFI measured-boot event log against a
// Keylime measured-boot reference state ("refstate"), with the semantics of
// Keylime's `example` policy (keylime/mba/elchecking/example.py, keylime
// 7.14.3) and its known defects fixed. It also predicts PCR values for a
// boot chain (Predict).
//
// Evaluate accepts only an *eventlog.Verified: events whose PCRs replayed
// to a signature-checked quote. Even then only an event's (PCR, digest) is
// authenticated, never its type or data, so wherever a decision reads event
// data (variable names and contents, GRUB strings, EFI actions) the
// evaluator first checks that the verified digest is the hash of that data
// and rejects the event otherwise.
//
// Every rejection is a failure.Failure with Keylime's id for a failed
// `example` evaluation, "measured_boot.policy_example" (so Keylime severity
// policies keep working), a Context naming the check, PCR, event index,
// expected and got values, and one human sentence. All failures are
// collected, not only the first.
//
// # Differences from Keylime's example policy
//
// Defects of example.py (and of the tpm2-tools pipeline under it) that
// zest fixes, by the numbering of the shared reference's "Known defects":
//
//	Keylime behaviour                                   zest
//	#1  a 2nd EV_NO_ACTION (StartupLocality) fails       EV_NO_ACTION is never extended and never reaches the
//	                                                     policy; StartupLocality is applied by the replay
//	#2  tpm2-tools 5.4 replay bugs (NO_ACTION extended,  spec-correct replay in digests/eventlog
//	    StartupLocality ignored)
//	#4  dbx must be exactly one SHA256 list              logged dbx, any number of lists of any type, must
//	                                                     contain every refstate entry
//	#5  FvVol/FvFile apps counted as boot chain, so the  such an app is accepted when its digest is in the
//	    generator's own refstate fails                   refstate's firmware_apps (zest extension); its
//	                                                     device path alone is never trusted
//	#12 EV_SEPARATOR compared with upper-case FFFFFFFF   separators classified from data and digest
//	    sha256 digests compared whatever bank was quoted  only the verified bank's digests are compared;
//	                                                     the refstate holds sha256, so the bank must be sha256
//	    GRUB kernel_cmdline text not bound to its digest  PCR 8 text must hash to the event digest
//	    variable contents (PK, db, vendor_db, SecureBoot) variable events must hash to their digest before
//	    not bound to the digest                           their contents are used
//	    has_secureboot true but no SecureBoot variable    rejected (check "secureboot")
//	    logged
//	    db authority (the cert that verified an image)    must be an entry of the refstate's db
//	    accepted without a look
//	    "UEFI Debug Mode" action not dispatched           rejected by name (check "debug_mode")
//
// Real-hardware events example.py rejects as an "unexpected combination"
// and zest accepts, because they either are not policy-relevant or cannot
// be pinned by Keylime's refstate format (PCR 0-2 values can be pinned with
// a PCR value policy instead):
//
//	PCR 0  EV_S_CRTM_CONTENTS, EV_POST_CODE, EV_NONHOST_CODE/CONFIG/INFO,
//	       EV_EFI_HCRTM_EVENT (Intel Boot Guard / CSME measurements)
//	PCR 1  EV_EFI_VARIABLE_DRIVER_CONFIG (vendor setup variables),
//	       EV_EFI_VARIABLE_BOOT2, EV_TABLE_OF_DEVICES, EV_NONHOST_CONFIG; the
//	       once-only limits on CPU microcode, handoff tables and platform
//	       config flags are dropped (a count of unpinned events proves nothing)
//	PCR 2  EV_EFI_RUNTIME_SERVICES_DRIVER, EV_EFI_PLATFORM_FIRMWARE_BLOB(2),
//	       EV_EFI_SPDM_FIRMWARE_BLOB/CONFIG (option ROMs, device firmware)
//	PCR 4  EV_OMIT_BOOT_DEVICE_EVENTS (boot attempts not measured; the
//	       applications that did run are still checked)
//	PCR 5  EV_EFI_GPT_EVENT2, EV_EFI_HANDOFF_TABLES2
//	PCR 8  "module_cmdline: " strings (GRUB; the initrd itself is pinned in PCR 9)
//	PCR 8  "grub_cmd: chainloader PATH ARGS" when GRUB chainloads the kernel
//	       (it logs no kernel_cmdline then): "PATH ARGS" is the command line
//	       kernel_cmdline must match; the kernel is the third PCR 4
//	       application (kernel_authcode) with Secure Boot off too; an entry
//	       with initrd_unmeasured (a zest extension, instead of
//	       initrd_plain_sha256) requires that no initrd is logged, since
//	       Linux 6.1's stub loads initrd= unmeasured
//	PCR 9  EV_EVENT_TAG from the Linux EFI stub: "Linux initrd" (its digest
//	       must equal the boot chain's initrd) and "LOADED_IMAGE::LoadOptions"
//	any    a quirk event from digests/eventlog (Verified.Quirks)
//
// Events of PCRs outside {0-9, 14} are not evaluated, as in Keylime.
//
// Limits of the refstate format that zest does not paper over: GRUB's own
// files in PCR 9 (grub.cfg, modules, fonts) and its grub_cmd strings in
// PCR 8 are not pinned; PCRs 8, 9 and 14 have no separator, so root on a
// running machine can extend them and append matching events; PCR 0-2
// events other than the S-CRTM version and platform firmware blobs are
// accepted unpinned. Pin those PCRs' values with a PCR policy if needed.
//
// The package never prints, logs or exits; it must not import archive.
package mb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
)

// PolicyName is the Keylime measured-boot policy whose semantics Evaluate
// follows; failures carry the id "measured_boot.policy_" + PolicyName.
const PolicyName = "example"

// FailureID is the id of every rejection: Keylime's id for a failed
// evaluation of the example policy. Context["check"] tells them apart.
const FailureID = "measured_boot.policy_" + PolicyName

// RelevantPCRs are the PCRs the example policy reads.
var RelevantPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14}

// Options weakens Evaluate. The zero value is strict.
type Options struct {
	// AllowUnpinnedFirmwareApps accepts PCR 4 applications whose logged
	// device path names a firmware volume (FvVol/FvFile) even when the
	// refstate's firmware_apps does not list their digest, as Keylime's
	// generator assumes. The device path is not authenticated: a
	// malicious boot application can relabel its own event this way.
	AllowUnpinnedFirmwareApps bool
}

// Checks named in Context["check"].
const (
	CheckRefstate         = "refstate"          // the refstate is unusable (Error)
	CheckBank             = "bank"              // the verified bank is not one the refstate holds (Error)
	CheckUnexpectedEvent  = "unexpected_event"  // (PCR, event type) not allowed
	CheckDataBinding      = "data_binding"      // event data does not hash to the verified digest
	CheckSeparator        = "separator"         // error or malformed EV_SEPARATOR
	CheckEFIAction        = "efi_action"        // unknown EV_EFI_ACTION string for the PCR
	CheckDebugMode        = "debug_mode"        // firmware logged "UEFI Debug Mode"
	CheckSecureBoot       = "secureboot"        // SecureBoot variable differs from has_secureboot or is missing
	CheckVariable         = "variable"          // unexpected UEFI variable name or GUID
	CheckPK               = "pk"                // logged key not in refstate
	CheckKEK              = "kek"               //
	CheckDB               = "db"                //
	CheckDBX              = "dbx"               // refstate dbx entry missing from the logged dbx
	CheckVendorDB         = "vendor_db"         //
	CheckAuthority        = "authority"         // unexpected or unknown EV_EFI_VARIABLE_AUTHORITY
	CheckRepeated         = "repeated"          // a once-only variable logged twice
	CheckMokList          = "moklist"           // MokList/MokListX digest not in refstate
	CheckFirmware         = "firmware"          // S-CRTM / platform firmware blobs
	CheckFirmwareApp      = "firmware_app"      // FvVol/FvFile application not pinned
	CheckBootChain        = "boot_chain"        // shim/grub/kernel/initrd/vmlinuz/cmdline
	CheckIPL              = "ipl"               // unexpected EV_IPL string in PCR 8, 9 or 14
	CheckCmdlineRegexp    = "kernel_cmdline_re" // refstate kernel_cmdline is not an RE2-compatible regexp (Error)
	checkMissingPCRsLabel = "missing_pcrs"
)

// efiActions are the EV_EFI_ACTION strings the PC Client PFP defines, per
// PCR ("UEFI Debug Mode" is handled separately).
var efiActions = map[int][]string{
	1: {"Entering ROM Based Setup"},
	2: {"Entering ROM Based Setup"},
	4: {"Calling EFI Application from Boot Option", "Returning from EFI Application from Boot Option"},
	5: {"Exit Boot Services Invocation", "Exit Boot Services Returned with Failure", "Exit Boot Services Returned with Success"},
}

const debugMode = "UEFI Debug Mode"

var bootVarName = regexp.MustCompile(`^(?:BootOrder|Boot[0-9a-fA-F]+)$`)

// Evaluate checks every event of v's PCRs 0-9 and 14 against ref and
// returns all failures; an empty list means the boot is trusted. A nil
// Verified or refstate, an unusable refstate, a bank the refstate does not
// hold, or a relevant PCR missing from v yield Error failures: the boot
// could not be evaluated, which is never a pass.
func Evaluate(v *eventlog.Verified, ref *policygen.MBRefstate, opts Options) failure.List {
	var fails failure.List
	if v == nil {
		fails.Errorf(FailureID, map[string]any{"check": CheckRefstate, "policy": PolicyName}, "no verified event log to evaluate")
		return fails
	}
	if ref == nil {
		fails.Errorf(FailureID, map[string]any{"check": CheckRefstate, "policy": PolicyName}, "no measured-boot refstate (an empty refstate is not accept-all)")
		return fails
	}
	if err := ref.Check(); err != nil {
		fails.Errorf(FailureID, map[string]any{"check": CheckRefstate, "policy": PolicyName, "reason": err.Error()}, "the refstate is unusable: %v", err)
		return fails
	}
	if v.Algorithm() != digests.SHA256 {
		fails.Errorf(FailureID, map[string]any{"check": CheckBank, "policy": PolicyName, "bank": string(v.Algorithm())},
			"the event log was verified in the %s bank, but the refstate holds sha256 digests; only digests of the quoted bank are authenticated", v.Algorithm())
		return fails
	}
	pcrs := v.PCRs()
	var missing []int
	for _, p := range RelevantPCRs {
		if _, ok := pcrs[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		fails.Errorf(failure.MBMissingPCRs, map[string]any{"context": "PCRs are missing in quote", "data": missing},
			"PCRs %v are not covered by the quote (or did not verify), so the boot cannot be evaluated", missing)
		return fails
	}
	h, _ := v.Algorithm().New()
	e := &evaluator{ref: ref, opts: opts, alg: v.Algorithm(), seen: map[string]int{}, h: h}
	for _, ev := range v.Events() {
		if !slices.Contains(RelevantPCRs, ev.PCR) {
			continue
		}
		e.event(&ev)
	}
	e.finish()
	return e.fails
}

type evaluator struct {
	ref   *policygen.MBRefstate
	opts  Options
	alg   digests.Algorithm
	fails failure.List

	seen map[string]int // once-only variables: key -> event index
	h    hash.Hash
	sum  []byte

	secureBootSeen bool
	scrtms         []*eventlog.Event
	blobs          []*eventlog.Event
	bsas           []*eventlog.Event
	initrds        []*eventlog.Event
	stubInitrds    []*eventlog.Event // Linux EFI stub's LoadFile2 initrd measurements
	vmlinuz        []*eventlog.Event
	cmdlines       []*eventlog.Event // "kernel_cmdline: " and "grub_cmd: chainloader " events
	cmdlineText    []string
}

func (e *evaluator) reject(check string, ev *eventlog.Event, ctx map[string]any, format string, args ...any) {
	if ctx == nil {
		ctx = map[string]any{}
	}
	ctx["check"] = check
	ctx["policy"] = PolicyName
	if ev != nil {
		ctx["pcr"] = ev.PCR
		ctx["event"] = ev.Index
		ctx["event_type"] = ev.Type.String()
		if q := ev.Synthetic(); q != "" {
			ctx["quirk"] = q
		}
		format = "PCR %d event %d (%s): " + format
		args = append([]any{ev.PCR, ev.Index, ev.Type}, args...)
	}
	e.fails.Rejectf(FailureID, ctx, format, args...)
}

func (e *evaluator) digest(ev *eventlog.Event) string { return hex.EncodeToString(ev.Digest(e.alg)) }

// bound checks that data hashes to the event's verified digest.
func (e *evaluator) bound(ev *eventlog.Event, data []byte, what string) bool {
	e.h.Reset()
	e.h.Write(data)
	e.sum = e.h.Sum(e.sum[:0])
	if sum := e.sum; !bytes.Equal(sum, ev.Digest(e.alg)) {
		e.reject(CheckDataBinding, ev, map[string]any{"expected": hex.EncodeToString(sum), "got": e.digest(ev)},
			"the %s digest is not the hash of the logged %s, so the logged data cannot be trusted", e.alg, what)
		return false
	}
	return true
}

func (e *evaluator) unexpected(ev *eventlog.Event) {
	e.reject(CheckUnexpectedEvent, ev, nil, "this event type is not expected in PCR %d", ev.PCR)
}

func (e *evaluator) event(ev *eventlog.Event) {
	if ev.Type == eventlog.EV_SEPARATOR {
		e.separator(ev)
		return
	}
	if ev.Type == eventlog.EV_EFI_ACTION {
		e.action(ev)
		return
	}
	switch ev.PCR {
	case 0:
		switch ev.Type {
		case eventlog.EV_S_CRTM_VERSION:
			e.scrtms = append(e.scrtms, ev)
		case eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB2:
			e.blobs = append(e.blobs, ev)
		case eventlog.EV_S_CRTM_CONTENTS, eventlog.EV_POST_CODE, eventlog.EV_NONHOST_CODE, eventlog.EV_NONHOST_CONFIG,
			eventlog.EV_NONHOST_INFO, eventlog.EV_EFI_HCRTM_EVENT:
		default:
			e.unexpected(ev)
		}
	case 1:
		switch ev.Type {
		case eventlog.EV_CPU_MICROCODE, eventlog.EV_EFI_HANDOFF_TABLES, eventlog.EV_EFI_HANDOFF_TABLES2,
			eventlog.EV_PLATFORM_CONFIG_FLAGS, eventlog.EV_TABLE_OF_DEVICES, eventlog.EV_NONHOST_CONFIG,
			eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, eventlog.EV_EFI_VARIABLE_BOOT2:
		case eventlog.EV_EFI_VARIABLE_BOOT:
			v, err := eventlog.ParseVariable(ev)
			if err != nil || v.VendorGUID != eventlog.GlobalVariableGUID || !bootVarName.MatchString(v.Name) {
				e.reject(CheckVariable, ev, map[string]any{"variable": v.Name, "guid": v.VendorGUID.String()},
					"boot variable %q (%s) is not BootOrder or Boot####", v.Name, v.VendorGUID)
			}
		default:
			e.unexpected(ev)
		}
	case 2:
		switch ev.Type {
		case eventlog.EV_EFI_BOOT_SERVICES_DRIVER, eventlog.EV_EFI_RUNTIME_SERVICES_DRIVER,
			eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB2,
			eventlog.EV_EFI_SPDM_FIRMWARE_BLOB, eventlog.EV_EFI_SPDM_FIRMWARE_CONFIG:
		default:
			e.unexpected(ev)
		}
	case 4:
		switch ev.Type {
		case eventlog.EV_EFI_BOOT_SERVICES_APPLICATION:
			e.application(ev)
		case eventlog.EV_OMIT_BOOT_DEVICE_EVENTS:
		default:
			e.unexpected(ev)
		}
	case 5:
		switch ev.Type {
		case eventlog.EV_EFI_GPT_EVENT, eventlog.EV_EFI_GPT_EVENT2, eventlog.EV_EFI_HANDOFF_TABLES2:
		default:
			e.unexpected(ev)
		}
	case 7:
		switch ev.Type {
		case eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG:
			e.driverConfig(ev)
		case eventlog.EV_EFI_VARIABLE_AUTHORITY:
			e.authority(ev)
		default:
			e.unexpected(ev)
		}
	case 8:
		if ev.Type != eventlog.EV_IPL {
			e.unexpected(ev)
			return
		}
		e.grubString(ev)
	case 9:
		switch ev.Type {
		case eventlog.EV_IPL:
			e.grubFile(ev)
		case eventlog.EV_EVENT_TAG:
			e.stubTag(ev)
		default:
			e.unexpected(ev)
		}
	case 14:
		if ev.Type != eventlog.EV_IPL {
			e.unexpected(ev)
			return
		}
		e.mok(ev)
	default: // 3, 6: separators only
		e.unexpected(ev)
	}
}

func (e *evaluator) separator(ev *eventlog.Event) {
	if ev.PCR > 7 {
		e.unexpected(ev)
		return
	}
	k, err := eventlog.Separator(ev, e.alg)
	if err != nil || (k != eventlog.SeparatorNormal && k != eventlog.SeparatorAltNormal) {
		e.reject(CheckSeparator, ev, map[string]any{"kind": k.String(), "data": hex.EncodeToString(ev.Data)},
			"separator is %s, want 00000000 or ffffffff hashed into the digest (an error separator means the firmware failed)", k)
	}
}

func (e *evaluator) action(ev *eventlog.Event) {
	s := string(ev.Data)
	if !e.bound(ev, ev.Data, "action string") {
		return
	}
	if s == debugMode {
		e.reject(CheckDebugMode, ev, nil, "the firmware runs in UEFI debug mode")
		return
	}
	if !slices.Contains(efiActions[ev.PCR], s) {
		e.reject(CheckEFIAction, ev, map[string]any{"got": s, "expected": efiActions[ev.PCR]}, "action %q is not one the firmware logs in PCR %d", s, ev.PCR)
	}
}

func (e *evaluator) application(ev *eventlog.Event) {
	if policygen.FirmwareApp(ev) {
		d := ev.Digest(e.alg)
		for _, fa := range e.ref.FirmwareApps {
			if fa.Matches(e.alg, d) {
				return
			}
		}
		if e.opts.AllowUnpinnedFirmwareApps {
			return
		}
		im, _ := eventlog.ParseImageLoad(ev)
		e.reject(CheckFirmwareApp, ev, map[string]any{"got": e.digest(ev), "device_path": im.Text()},
			"firmware application %s (digest %s) is not in the refstate's firmware_apps; its device path alone is not authenticated", im.Text(), e.digest(ev))
		return
	}
	e.bsas = append(e.bsas, ev)
}

// onceKey records a once-only variable event and reports a repeat.
func (e *evaluator) once(ev *eventlog.Event, key string) bool {
	if first, ok := e.seen[key]; ok {
		e.reject(CheckRepeated, ev, map[string]any{"variable": key, "first_event": first}, "%s was already logged by event %d", key, first)
		return false
	}
	e.seen[key] = ev.Index
	return true
}

func (e *evaluator) driverConfig(ev *eventlog.Event) {
	v, err := eventlog.ParseVariable(ev)
	if err != nil {
		e.reject(CheckVariable, ev, map[string]any{"reason": err.Error()}, "%v", err)
		return
	}
	if !e.bound(ev, ev.Data, "UEFI variable "+v.Name) {
		return
	}
	global := v.VendorGUID == eventlog.GlobalVariableGUID
	imageDB := v.VendorGUID == eventlog.ImageSecurityDBGUID
	switch {
	case global && v.Name == "SecureBoot":
		e.secureBootSeen = true
		on := len(v.Data) == 1 && v.Data[0] == 1
		if on != e.ref.HasSecureBoot {
			e.reject(CheckSecureBoot, ev, map[string]any{"expected": e.ref.HasSecureBoot, "got": on, "data": hex.EncodeToString(v.Data)},
				"Secure Boot is %s, the refstate says has_secureboot %v", onOff(on), e.ref.HasSecureBoot)
		}
	case global && v.Name == "PK":
		e.subset(ev, v, CheckPK, e.ref.PK)
	case global && v.Name == "KEK":
		e.subset(ev, v, CheckKEK, e.ref.KEK)
	case imageDB && v.Name == "db":
		e.subset(ev, v, CheckDB, e.ref.DB)
	case imageDB && v.Name == "vendor_db":
		e.subset(ev, v, CheckVendorDB, e.ref.VendorDB)
	case imageDB && v.Name == "dbx":
		if !e.once(ev, "dbx") {
			return
		}
		sigs, err := eventlog.ParseSignatureLists(v.Data)
		if err != nil {
			e.reject(CheckDBX, ev, map[string]any{"reason": err.Error()}, "dbx: %v", err)
			return
		}
		logged := make(sigSet, len(sigs))
		for _, s := range sigs {
			logged[string(s.Data)] = append(logged[string(s.Data)], s.Owner)
		}
		var missing []string
		for _, want := range e.ref.DBX {
			g, ok := parseGUID(want.Owner)
			if !ok || !logged.has(g, want.Data) {
				missing = append(missing, want.Owner+" "+want.Data.String())
			}
		}
		if len(missing) > 0 {
			e.reject(CheckDBX, ev, map[string]any{"expected": missing, "got": len(sigs)},
				"the logged dbx lacks %d revocation(s) the refstate requires, first %s", len(missing), missing[0])
		}
	default:
		e.reject(CheckVariable, ev, map[string]any{"variable": v.Name, "guid": v.VendorGUID.String()},
			"unexpected Secure Boot variable %q (%s)", v.Name, v.VendorGUID)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// sigSet indexes signatures by data, then owner, so that a dbx of
// hundreds of entries is checked in linear time without allocating.
type sigSet map[string][]eventlog.GUID

func newSigSet(ref []policygen.MBSignature) sigSet {
	set := make(sigSet, len(ref))
	for _, r := range ref {
		g, ok := parseGUID(r.Owner)
		if !ok {
			continue // cannot equal any logged owner
		}
		set[string(r.Data)] = append(set[string(r.Data)], g)
	}
	return set
}

func (s sigSet) has(owner eventlog.GUID, data []byte) bool {
	return slices.Contains(s[string(data)], owner)
}

// parseGUID is eventlog.ParseGUID without its allocations (a dbx holds
// hundreds of owners per evaluation).
func parseGUID(s string) (eventlog.GUID, bool) {
	var g eventlog.GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	var raw [16]byte
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return g, false
		}
		raw[j] = hi<<4 | lo
		j++
		i += 2
	}
	// Data1-3 are little-endian on the wire.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// subset checks that every signature of a PK/KEK/db/vendor_db variable is
// in the refstate's list (Keylime's KeySubset, any list type). With Secure
// Boot off and an empty refstate list the variable is not checked, as in
// Keylime.
func (e *evaluator) subset(ev *eventlog.Event, v eventlog.Variable, check string, ref []policygen.MBSignature) {
	if !e.once(ev, check) {
		return
	}
	if !e.ref.HasSecureBoot && len(ref) == 0 {
		return
	}
	sigs, err := eventlog.ParseSignatureLists(v.Data)
	if err != nil {
		e.reject(check, ev, map[string]any{"reason": err.Error()}, "%s: %v", v.Name, err)
		return
	}
	set := newSigSet(ref)
	for i, s := range sigs {
		if !set.has(s.Owner, s.Data) {
			e.reject(check, ev, map[string]any{"got": map[string]string{"SignatureOwner": s.Owner.String(), "SignatureData": "0x" + hex.EncodeToString(s.Data)}, "index": i},
				"%s entry %d (owner %s) is not in the refstate's %s", v.Name, i, s.Owner, check)
		}
	}
}

func (e *evaluator) authority(ev *eventlog.Event) {
	v, err := eventlog.ParseVariable(ev)
	if err != nil {
		e.reject(CheckAuthority, ev, map[string]any{"reason": err.Error()}, "%v", err)
		return
	}
	if !e.bound(ev, ev.Data, "authority "+v.Name) {
		return
	}
	member := func(check string, ref []policygen.MBSignature) {
		if !e.ref.HasSecureBoot && len(ref) == 0 {
			return
		}
		owner, data, err := eventlog.ParseSignatureData(v.Data)
		if err == nil && newSigSet(ref).has(owner, data) {
			return
		}
		e.reject(check, ev, map[string]any{"got": "0x" + hex.EncodeToString(v.Data)},
			"the %s certificate that verified an image is not in the refstate's %s", v.Name, check)
	}
	switch {
	case v.VendorGUID == eventlog.ImageSecurityDBGUID && v.Name == "db":
		member(CheckDB, e.ref.DB)
	case v.VendorGUID == eventlog.ImageSecurityDBGUID && v.Name == "vendor_db":
		member(CheckVendorDB, e.ref.VendorDB)
	case v.VendorGUID == eventlog.ShimLockGUID && (v.Name == "SbatLevel" || v.Name == "Shim" || v.Name == "MokListRT" || v.Name == "MokListTrusted"):
		e.once(ev, "authority "+v.Name)
	default:
		e.reject(CheckAuthority, ev, map[string]any{"variable": v.Name, "guid": v.VendorGUID.String()},
			"unexpected authority %q (%s)", v.Name, v.VendorGUID)
	}
}

var grubPrefixes = []string{"grub_cmd: ", "kernel_cmdline: ", "module_cmdline: "}

// grubString handles PCR 8: GRUB hashes the text after its prefix.
func (e *evaluator) grubString(ev *eventlog.Event) {
	s := string(bytes.TrimSuffix(ev.Data, []byte{0}))
	for _, p := range grubPrefixes {
		rest, ok := strings.CutPrefix(s, p)
		if !ok {
			continue
		}
		if !e.bound(ev, []byte(rest), "GRUB string after "+strings.TrimSpace(p)) {
			return
		}
		switch {
		case p == "kernel_cmdline: ":
			e.cmdlines = append(e.cmdlines, ev)
			e.cmdlineText = append(e.cmdlineText, rest)
		case p == "grub_cmd: " && strings.HasPrefix(rest, "chainloader "):
			// GRUB chainloads the kernel: the command's arguments
			// (kernel path first) are the kernel command line, and
			// GRUB logs no kernel_cmdline. Counted with them, so a
			// log holding both (a linux command, then a chainloaded
			// image that actually runs) has two and is rejected.
			e.cmdlines = append(e.cmdlines, ev)
			e.cmdlineText = append(e.cmdlineText, strings.TrimPrefix(rest, "chainloader "))
		}
		return
	}
	e.reject(CheckIPL, ev, map[string]any{"got": s}, "PCR 8 string %q is none of GRUB's grub_cmd/kernel_cmdline/module_cmdline", clip(s))
}

var (
	pcr9Accept  = regexp.MustCompile(`^(?s:.*/loader/entries.*|.*/grub.*)$`)
	pcr9Vmlinuz = regexp.MustCompile(`^(?s:.*/vmlinuz.*)$`)
	pcr9Initrd  = regexp.MustCompile(`^(?s:.*/initrd.*|.*/initramfs.*)$`)
)

// grubFile handles PCR 9 (files GRUB read), classified by path as
// example.py does.
func (e *evaluator) grubFile(ev *eventlog.Event) {
	s, _ := eventlog.IPLString(ev)
	switch {
	case pcr9Accept.MatchString(s):
	case pcr9Vmlinuz.MatchString(s):
		e.vmlinuz = append(e.vmlinuz, ev)
	case pcr9Initrd.MatchString(s):
		e.initrds = append(e.initrds, ev)
	default:
		e.reject(CheckIPL, ev, map[string]any{"got": s}, "PCR 9 file %q is neither GRUB's own, a kernel nor an initrd", clip(s))
	}
}

// Tagged events the Linux EFI stub logs in PCR 9
// (drivers/firmware/efi/libstub/efi-stub-helper.c): the initrd it loaded
// through LoadFile2, and the kernel's load options.
const (
	linuxInitrdTag      = 0x8F3B22EC
	linuxLoadOptionsTag = 0x8F3B22ED
)

// stubTag handles the Linux EFI stub's EV_EVENT_TAG events: the initrd's
// digest is its file hash and must equal the boot chain's initrd; the load
// options are the command line GRUB already logged in PCR 8.
func (e *evaluator) stubTag(ev *eventlog.Event) {
	d := ev.Data
	if len(d) < 8 || uint64(binary.LittleEndian.Uint32(d[4:])) != uint64(len(d)-8) {
		e.reject(CheckIPL, ev, map[string]any{"data": hex.EncodeToString(d)}, "malformed TCG_PCClientTaggedEvent")
		return
	}
	switch binary.LittleEndian.Uint32(d) {
	case linuxInitrdTag:
		e.stubInitrds = append(e.stubInitrds, ev)
	case linuxLoadOptionsTag:
	default:
		e.reject(CheckIPL, ev, map[string]any{"tag": fmt.Sprintf("%#x", binary.LittleEndian.Uint32(d))},
			"tagged event %#x is not one the Linux EFI stub logs", binary.LittleEndian.Uint32(d))
	}
}

func (e *evaluator) mok(ev *eventlog.Event) {
	s, _ := eventlog.IPLString(ev)
	var ref []policygen.MBDigest
	switch s {
	case "MokList":
		ref = e.ref.MokDig
	case "MokListX":
		ref = e.ref.MokXDig
	case "MokListTrusted":
		e.once(ev, "MokListTrusted")
		return
	default:
		e.reject(CheckIPL, ev, map[string]any{"got": s}, "PCR 14 string %q is not MokList, MokListX or MokListTrusted", clip(s))
		return
	}
	for _, d := range ref {
		if d.Matches(e.alg, ev.Digest(e.alg)) {
			return
		}
	}
	e.reject(CheckMokList, ev, map[string]any{"got": e.digest(ev), "expected": digestList(ref, e.alg)}, "%s digest %s is not in the refstate", s, e.digest(ev))
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func digestList(ds []policygen.MBDigest, alg digests.Algorithm) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		if v, ok := d[policygen.MBAlgName(alg)]; ok {
			out = append(out, hex.EncodeToString(v))
		}
	}
	return out
}

// finish runs the checks over stashed events: firmware alternatives, Secure
// Boot presence and boot chain alternatives.
func (e *evaluator) finish() {
	if e.ref.HasSecureBoot && !e.secureBootSeen {
		e.reject(CheckSecureBoot, nil, map[string]any{"pcr": 7, "expected": true, "got": nil},
			"PCR 7 has no SecureBoot variable event, but the refstate says has_secureboot true")
	}
	e.firmware()
	e.bootChain()
}

func (e *evaluator) firmware() {
	var reasons []string
	for i, alt := range e.ref.ScrtmAndBios {
		r := e.firmwareMismatch(alt)
		if r == "" {
			return
		}
		reasons = append(reasons, fmt.Sprintf("scrtm_and_bios[%d]: %s", i, r))
	}
	got := map[string]any{"scrtm": eventDigests(e.scrtms, e.alg), "platform_firmware": eventDigests(e.blobs, e.alg)}
	e.reject(CheckFirmware, nil, map[string]any{"pcr": 0, "got": got, "expected": e.ref.ScrtmAndBios, "reasons": reasons},
		"PCR 0 firmware matches no scrtm_and_bios alternative: %s", strings.Join(reasons, "; "))
}

func (e *evaluator) firmwareMismatch(alt policygen.MBFirmware) string {
	switch {
	case len(e.scrtms) != 1:
		return fmt.Sprintf("%d EV_S_CRTM_VERSION events, want exactly 1", len(e.scrtms))
	case !alt.SCRTM.Matches(e.alg, e.scrtms[0].Digest(e.alg)):
		return fmt.Sprintf("S-CRTM version event %d digest %s, want %s", e.scrtms[0].Index, e.digest(e.scrtms[0]), hex.EncodeToString(alt.SCRTM[policygen.MBAlgName(e.alg)]))
	case len(e.blobs) != len(alt.PlatformFirmware):
		return fmt.Sprintf("%d platform firmware blobs, want %d", len(e.blobs), len(alt.PlatformFirmware))
	}
	for i, b := range e.blobs {
		if !alt.PlatformFirmware[i].Matches(e.alg, b.Digest(e.alg)) {
			return fmt.Sprintf("platform firmware blob %d (event %d) digest %s, want %s", i, b.Index, e.digest(b), hex.EncodeToString(alt.PlatformFirmware[i][policygen.MBAlgName(e.alg)]))
		}
	}
	return ""
}

func eventDigests(evs []*eventlog.Event, alg digests.Algorithm) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = hex.EncodeToString(ev.Digest(alg))
	}
	return out
}

func (e *evaluator) bootChain() {
	var reasons []string
	for i, k := range e.ref.Kernels {
		r, isErr := e.kernelMismatch(k)
		if isErr {
			e.fails.Errorf(FailureID, map[string]any{"check": CheckCmdlineRegexp, "policy": PolicyName, "kernel": i, "reason": r},
				"kernels[%d].kernel_cmdline cannot be evaluated: %s", i, r)
			continue
		}
		if r == "" {
			return
		}
		reasons = append(reasons, fmt.Sprintf("kernels[%d]: %s", i, r))
	}
	if len(reasons) == 0 {
		return // every alternative was an Error, already reported
	}
	got := map[string]any{"bsas": eventDigests(e.bsas, e.alg), "initrd": eventDigests(e.initrds, e.alg),
		"vmlinuz": eventDigests(e.vmlinuz, e.alg), "kernel_cmdline": e.cmdlineText}
	e.reject(CheckBootChain, nil, map[string]any{"pcr": []int{4, 8, 9}, "got": got, "expected": e.ref.Kernels, "reasons": reasons},
		"the boot chain matches no kernels alternative: %s", strings.Join(reasons, "; "))
}

// kernelMismatch returns "" when the logged chain matches k, else why not;
// isErr when k's command line regexp cannot be compiled.
func (e *evaluator) kernelMismatch(k policygen.MBKernel) (reason string, isErr bool) {
	var want [][]byte
	switch {
	case e.ref.HasSecureBoot:
		want = [][]byte{k.ShimAuthcode, k.GrubAuthcode, k.KernelAuthcode}
	case k.KernelAuthcode != nil && len(e.bsas) > 2:
		want = [][]byte{k.ShimAuthcode, k.GrubAuthcode, k.KernelAuthcode}
	default:
		want = [][]byte{k.ShimAuthcode, k.GrubAuthcode}
	}
	// shim logs the kernel a second time when GRUB loads it through shim's
	// protocol and LoadImage (example.py accepts [shim, grub, kernel, kernel]).
	if len(want) == 3 && len(e.bsas) == 4 {
		want = append(want, k.KernelAuthcode)
	}
	names := []string{"shim", "grub", "kernel", "kernel"}
	if len(e.bsas) != len(want) {
		return fmt.Sprintf("%d PCR 4 applications, want %d (%s)", len(e.bsas), len(want), strings.Join(names[:len(want)], ", ")), false
	}
	for i, ev := range e.bsas {
		if !bytes.Equal(ev.Digest(e.alg), want[i]) {
			return fmt.Sprintf("%s (event %d) Authenticode %s, want %x", names[i], ev.Index, e.digest(ev), want[i]), false
		}
	}
	if k.InitrdUnmeasured {
		// The entry measures no initrd (chainloader with Linux 6.1): none
		// may be logged.
		if n := len(e.initrds) + len(e.stubInitrds); n != 0 {
			return fmt.Sprintf("%d initrd events in PCR 9, want none (initrd_unmeasured)", n), false
		}
	} else if len(e.initrds) != 1 {
		return fmt.Sprintf("%d initrd events in PCR 9, want 1", len(e.initrds)), false
	} else if !bytes.Equal(e.initrds[0].Digest(e.alg), k.InitrdPlain) {
		return fmt.Sprintf("initrd (event %d) sha256 %s, want %x", e.initrds[0].Index, e.digest(e.initrds[0]), []byte(k.InitrdPlain)), false
	}
	for _, si := range e.stubInitrds {
		if !bytes.Equal(si.Digest(e.alg), k.InitrdPlain) {
			return fmt.Sprintf("initrd measured by the kernel's EFI stub (event %d) sha256 %s, want %x", si.Index, e.digest(si), []byte(k.InitrdPlain)), false
		}
	}
	if len(e.vmlinuz) != 1 {
		return fmt.Sprintf("%d vmlinuz events in PCR 9, want 1", len(e.vmlinuz)), false
	}
	if k.VmlinuzPlain != nil && !bytes.Equal(e.vmlinuz[0].Digest(e.alg), k.VmlinuzPlain) {
		return fmt.Sprintf("vmlinuz (event %d) sha256 %s, want %x", e.vmlinuz[0].Index, e.digest(e.vmlinuz[0]), []byte(k.VmlinuzPlain)), false
	}
	if len(e.cmdlines) != 1 {
		return fmt.Sprintf("%d kernel command line events in PCR 8 (kernel_cmdline or grub_cmd: chainloader), want 1", len(e.cmdlines)), false
	}
	re, err := compileCmdline(k.KernelCmdline)
	if err != nil {
		return err.Error(), true
	}
	if !re.MatchString(e.cmdlineText[0]) {
		return fmt.Sprintf("kernel command line (event %d) %q does not match %q", e.cmdlines[0].Index, clip(e.cmdlineText[0]), clip(k.KernelCmdline)), false
	}
	return "", false
}

// cmdlineCache keeps compiled kernel_cmdline expressions: a verifier
// evaluates the same few refstates over and over. Bounded by clearing.
var cmdlineCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

// compileCmdline emulates Python's re.fullmatch with RE2.
func compileCmdline(s string) (*regexp.Regexp, error) {
	cmdlineCache.Lock()
	re, ok := cmdlineCache.m[s]
	cmdlineCache.Unlock()
	if ok {
		return re, nil
	}
	re, err := compileCmdlineUncached(s)
	if err != nil {
		return nil, err
	}
	cmdlineCache.Lock()
	if cmdlineCache.m == nil || len(cmdlineCache.m) >= 1024 {
		cmdlineCache.m = map[string]*regexp.Regexp{}
	}
	cmdlineCache.m[s] = re
	cmdlineCache.Unlock()
	return re, nil
}

func compileCmdlineUncached(s string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + s + `)$`)
	if err != nil {
		return nil, fmt.Errorf("not a regular expression RE2 accepts (look-arounds and back-references are Python-only): %v", err)
	}
	return re, nil
}
