package mb

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
)

// Replacements are the boot components that differ from a golden boot.
// A nil field keeps the golden log's value.
type Replacements struct {
	// Shim, Grub and Kernel replace the 1st, 2nd and 3rd (and 4th) PCR 4
	// boot application (firmware-volume applications are skipped, as the
	// generator does). Kernel's plain digests also replace GRUB's PCR 9
	// measurement of the vmlinuz file.
	Shim, Grub, Kernel *policygen.ComponentDigests
	// Initrd replaces GRUB's PCR 9 measurement of the initrd file.
	Initrd *policygen.ComponentDigests
	// Cmdline replaces the text of GRUB's PCR 8 "kernel_cmdline: " event
	// and of the "grub_cmd: linux ..." command that carries it.
	Cmdline *string
}

// Prediction is the expected value of PCRs per bank after a boot.
type Prediction struct {
	// PCRs maps bank -> PCR index -> value, for every PCR the log extends.
	PCRs map[digests.Algorithm]map[int][]byte
	// Replaced lists the golden log's events whose digests were replaced.
	Replaced []ReplacedEvent
}

// ReplacedEvent names one substituted event.
type ReplacedEvent struct {
	Index     int    `json:"event"`
	PCR       int    `json:"pcr"`
	Component string `json:"component"`
}

// PredictedPCRs are the PCRs a boot chain change can move, pcrlock-style:
// 4 (boot applications), 7 (Secure Boot policy and authorities), 8 (GRUB
// commands and kernel command line) and 9 (files GRUB read).
var PredictedPCRs = []int{4, 7, 8, 9}

// PredictFromLog replays a golden event log in each of its banks with the
// replaced components' digests substituted, giving the PCR values a machine
// with the same firmware, configuration and boot flow will have when it
// boots the new components. PCR 7 stays the golden log's value unless the
// new images are verified by different certificates than the golden ones
// (the authority events are not recomputed). Every replacement must find
// its event in the log; an absent one is an error naming the component.
func PredictFromLog(log *eventlog.Log, rep Replacements) (*Prediction, error) {
	if log == nil || len(log.Events) == 0 {
		return nil, errors.New("predict: the golden event log has no events")
	}
	events := slices.Clone(log.Events)
	for i := range events {
		events[i].Digests = slices.Clone(events[i].Digests)
	}
	var banks []digests.Algorithm
	for _, b := range log.Banks {
		if b.Algorithm != "" {
			banks = append(banks, b.Algorithm)
		}
	}
	p := &Prediction{PCRs: map[digests.Algorithm]map[int][]byte{}}
	set := func(e *eventlog.Event, component string, values func(alg digests.Algorithm) ([]byte, error)) error {
		for i := range e.Digests {
			alg := e.Digests[i].Algorithm
			if alg == "" {
				continue
			}
			v, err := values(alg)
			if err != nil {
				return err
			}
			e.Digests[i].Value = v
		}
		p.Replaced = append(p.Replaced, ReplacedEvent{Index: e.Index, PCR: e.PCR, Component: component})
		return nil
	}
	from := func(m map[digests.Algorithm][]byte, what string) func(digests.Algorithm) ([]byte, error) {
		return func(alg digests.Algorithm) ([]byte, error) {
			v, ok := m[alg]
			if !ok {
				return nil, fmt.Errorf("predict: no %s digest of the %s; the log has banks %v", alg, what, banks)
			}
			return v, nil
		}
	}
	hashOf := func(s string) func(digests.Algorithm) ([]byte, error) {
		return func(alg digests.Algorithm) ([]byte, error) {
			h, err := alg.New()
			if err != nil {
				return nil, err
			}
			h.Write([]byte(s))
			return h.Sum(nil), nil
		}
	}

	var bsas, vmlinuz, initrd, cmdline []*eventlog.Event
	var linuxCmd []*eventlog.Event
	for i := range events {
		e := &events[i]
		switch {
		case e.PCR == 4 && e.Type == eventlog.EV_EFI_BOOT_SERVICES_APPLICATION && !policygen.FirmwareApp(e):
			bsas = append(bsas, e)
		case e.PCR == 9 && e.Type == eventlog.EV_IPL:
			s, _ := eventlog.IPLString(e)
			switch {
			case pcr9Accept.MatchString(s):
			case pcr9Vmlinuz.MatchString(s):
				vmlinuz = append(vmlinuz, e)
			case pcr9Initrd.MatchString(s):
				initrd = append(initrd, e)
			}
		case e.PCR == 8 && e.Type == eventlog.EV_IPL:
			s := string(bytes.TrimSuffix(e.Data, []byte{0}))
			if strings.HasPrefix(s, "kernel_cmdline: ") {
				cmdline = append(cmdline, e)
			} else if strings.HasPrefix(s, "grub_cmd: linux") {
				linuxCmd = append(linuxCmd, e)
			}
		}
	}
	need := func(what string, evs []*eventlog.Event, n int) error {
		if len(evs) < n {
			return fmt.Errorf("predict: the golden log has no %s event to replace", what)
		}
		return nil
	}
	if rep.Shim != nil {
		if err := need("shim (1st PCR 4 application)", bsas, 1); err != nil {
			return nil, err
		}
		if err := set(bsas[0], "shim", from(rep.Shim.Authenticode, "shim")); err != nil {
			return nil, err
		}
	}
	if rep.Grub != nil {
		if err := need("GRUB (2nd PCR 4 application)", bsas, 2); err != nil {
			return nil, err
		}
		if err := set(bsas[1], "grub", from(rep.Grub.Authenticode, "GRUB image")); err != nil {
			return nil, err
		}
	}
	if rep.Kernel != nil {
		if len(bsas) < 3 && len(vmlinuz) == 0 {
			return nil, errors.New("predict: the golden log has neither a kernel PCR 4 application nor a PCR 9 vmlinuz event to replace")
		}
		for _, e := range bsas[min(2, len(bsas)):] {
			if err := set(e, "kernel", from(rep.Kernel.Authenticode, "kernel image")); err != nil {
				return nil, err
			}
		}
		for _, e := range vmlinuz {
			if err := set(e, "vmlinuz", from(rep.Kernel.Plain, "kernel file")); err != nil {
				return nil, err
			}
		}
	}
	if rep.Initrd != nil {
		if err := need("initrd (PCR 9)", initrd, 1); err != nil {
			return nil, err
		}
		for _, e := range initrd {
			if err := set(e, "initrd", from(rep.Initrd.Plain, "initrd")); err != nil {
				return nil, err
			}
		}
	}
	if rep.Cmdline != nil {
		if err := need("kernel_cmdline (PCR 8)", cmdline, 1); err != nil {
			return nil, err
		}
		for _, e := range cmdline {
			old := strings.TrimPrefix(string(bytes.TrimSuffix(e.Data, []byte{0})), "kernel_cmdline: ")
			e.Data = []byte("kernel_cmdline: " + *rep.Cmdline + "\x00")
			if err := set(e, "kernel_cmdline", hashOf(*rep.Cmdline)); err != nil {
				return nil, err
			}
			// GRUB also logs the linux command itself: "linux" or
			// "linuxefi" followed by the same arguments.
			for _, lc := range linuxCmd {
				s := strings.TrimPrefix(string(bytes.TrimSuffix(lc.Data, []byte{0})), "grub_cmd: ")
				name, args, ok := strings.Cut(s, " ")
				if !ok || args != old {
					continue
				}
				text := name + " " + *rep.Cmdline
				lc.Data = []byte("grub_cmd: " + text + "\x00")
				if err := set(lc, "grub_cmd linux", hashOf(text)); err != nil {
					return nil, err
				}
			}
		}
	}
	predicted := &eventlog.Log{Format: log.Format, SpecID: log.SpecID, Banks: log.Banks, Events: events}
	for _, alg := range banks {
		pcrs, err := predicted.Replay(alg)
		if err != nil {
			return nil, fmt.Errorf("predict: %w", err)
		}
		p.PCRs[alg] = pcrs
	}
	return p, nil
}

// Select returns the predicted values of the given PCRs in bank alg; a
// PCR the log never extends is reported at its reset value (zeros).
func (p *Prediction) Select(alg digests.Algorithm, pcrs []int) map[int][]byte {
	out := map[int][]byte{}
	bank, ok := p.PCRs[alg]
	if !ok {
		return out
	}
	for _, i := range pcrs {
		if v, ok := bank[i]; ok {
			out[i] = bytes.Clone(v)
		} else {
			out[i] = make([]byte, alg.Size())
		}
	}
	return out
}

// Banks lists the predicted banks, sorted.
func (p *Prediction) Banks() []digests.Algorithm {
	return slices.Sorted(maps.Keys(p.PCRs))
}

// PCR4Options describes the boot flow PredictPCR4 assumes.
type PCR4Options struct {
	// KernelTwice: the kernel's Authenticode is logged twice after GRUB
	// (GRUB verifies it through shim and then loads it with LoadImage, as
	// CentOS Stream 9 does). Default: once with Secure Boot, not at all
	// without (GRUB boots the kernel itself).
	KernelTwice bool
}

var (
	bootOptionAction = []byte("Calling EFI Application from Boot Option")
	separatorData    = []byte{0, 0, 0, 0}
)

// PredictPCR4 predicts the sha256 PCR 4 of each boot chain alternative of a
// refstate without any event log, assuming EDK2's order: the refstate's
// firmware applications (firmware_apps, in order), the "Calling EFI
// Application from Boot Option" action, the separator, then shim, GRUB and
// the kernel. Firmware that logs differently (another boot attempt, a
// "Returning from EFI Application" action, no firmware_apps recorded)
// gives other values; PredictFromLog with a golden log is exact.
func PredictPCR4(ref *policygen.MBRefstate, opts PCR4Options) ([][]byte, error) {
	if ref == nil || len(ref.Kernels) == 0 {
		return nil, errors.New("predict: the refstate has no boot chain")
	}
	var apps [][]byte
	for i, fa := range ref.FirmwareApps {
		d := fa.SHA256()
		if len(d) != 32 {
			return nil, fmt.Errorf("predict: firmware_apps[%d] has no sha256 digest", i)
		}
		apps = append(apps, d)
	}
	ext := func(pcr, d []byte) []byte {
		h := sha256New()
		h.Write(pcr)
		h.Write(d)
		return h.Sum(nil)
	}
	hash := func(b []byte) []byte { h := sha256New(); h.Write(b); return h.Sum(nil) }
	var out [][]byte
	for i, k := range ref.Kernels {
		pcr := make([]byte, 32)
		for _, a := range apps {
			pcr = ext(pcr, a)
		}
		pcr = ext(pcr, hash(bootOptionAction))
		pcr = ext(pcr, hash(separatorData))
		chain := [][]byte{k.ShimAuthcode, k.GrubAuthcode}
		if ref.HasSecureBoot || opts.KernelTwice {
			if len(k.KernelAuthcode) != 32 {
				return nil, fmt.Errorf("predict: kernels[%d] has no kernel_authcode_sha256", i)
			}
			chain = append(chain, k.KernelAuthcode)
			if opts.KernelTwice {
				chain = append(chain, k.KernelAuthcode)
			}
		}
		for _, d := range chain {
			pcr = ext(pcr, d)
		}
		out = append(out, pcr)
	}
	return out, nil
}

func sha256New() hash.Hash { return sha256.New() }
