package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/mb"
)

// maxEventLogFile bounds an event log file read from disk (64 MiB; real
// logs are 10-200 KB).
const maxEventLogFile = 64 << 20

// readEventLog reads a binary event log, or its base64 form (what the
// Keylime agent ships as mb_measurement_list), and parses it.
func readEventLog(name string) (*eventlog.Log, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxEventLogFile {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d-byte limit for an event log", name, st.Size(), maxEventLogFile)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l, err := eventlog.Parse(data)
	if err != nil {
		// The Keylime agent ships the log base64-encoded; accept that form
		// only when it decodes to a log that parses, else report the raw error.
		if t := bytes.TrimSpace(data); len(t) > 0 && isBase64(t) {
			if dec, derr := base64.StdEncoding.DecodeString(string(t)); derr == nil {
				if l2, perr := eventlog.Parse(dec); perr == nil {
					return l2, nil
				}
			}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func isBase64(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=', c == '\n', c == '\r':
		default:
			return false
		}
	}
	return true
}

func (a *app) policyMeasuredBootCmd() *cobra.Command {
	var (
		eventLog, refstate, firmware, out string
		withoutSB, merge                  bool
		files                             policygen.BootChainFiles
	)
	c := &cobra.Command{
		Use:   "measured-boot",
		Short: "Keylime measured-boot refstate from a golden event log, boot components, or by merging",
		Long: `Write a Keylime measured-boot reference state (refstate) for the "example"
policy, in one of three ways:

  --eventlog LOG [--without-secureboot]
      from a golden machine's binary_bios_measurements (raw or base64);
      the same refstate Keylime's create-mb-policy writes.
  --shim/--grub/--kernel/--initrd FILE|PKG.deb|PKG.rpm[:/path] --cmdline STR
      add a boot chain without any machine, to --refstate FILE (or to the
      firmware and Secure Boot keys of the golden log --firmware LOG).
      --firmware LOG with --refstate adds that log's firmware alternative.
  --merge A.json B.json...
      one refstate accepting what any of them accepts.

--cmdline is the text GRUB logs after "kernel_cmdline: ": the linux
command's arguments including the kernel path (or, for a kernel GRUB
chainloads, the chainloader command's arguments). --no-initrd instead of
--initrd: the boot measures no initrd (chainloader with Linux 6.1's EFI
stub); the entry says "initrd_unmeasured": true (a zest extension) instead
of initrd_plain_sha256, and Keylime's example policy rejects it.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			chain := files.Shim != "" || files.Grub != "" || files.Kernel != "" || files.Initrd != "" || files.NoInitrd || cmd.Flags().Changed("cmdline")
			if files.NoInitrd && files.Initrd != "" {
				return usageErrorf("give --initrd or --no-initrd, not both")
			}
			var r *policygen.MBRefstate
			switch {
			case merge:
				if eventLog != "" || refstate != "" || firmware != "" || chain {
					return usageErrorf("--merge takes only refstate files")
				}
				if len(args) < 1 {
					return usageErrorf("--merge needs refstate files")
				}
				var refs []*policygen.MBRefstate
				for _, name := range args {
					ref, err := readRefstate(name)
					if err != nil {
						return err
					}
					refs = append(refs, ref)
				}
				var err error
				if r, err = policygen.MergeMBRefstates(refs...); err != nil {
					return err
				}
			case len(args) > 0:
				return usageErrorf("unexpected arguments %q (refstates to merge need --merge)", args)
			case eventLog != "":
				if refstate != "" || firmware != "" {
					return usageErrorf("--eventlog generates a new refstate; use --firmware to take a log's firmware into --refstate")
				}
				l, err := readEventLog(eventLog)
				if err != nil {
					return err
				}
				r, err = policygen.GenerateMBRefstate(l, policygen.MBGenerateOptions{WithoutSecureBoot: withoutSB})
				if err != nil {
					if errors.Is(err, policygen.ErrSecureBootDisabled) {
						return fmt.Errorf("%s: %w (pass --without-secureboot)", eventLog, err)
					}
					return fmt.Errorf("%s: %w", eventLog, err)
				}
				if withoutSB && r.HasSecureBoot {
					a.note("zest: %s has Secure Boot enabled; --without-secureboot ignored", eventLog)
				}
			case refstate != "" || firmware != "":
				if refstate != "" {
					var err error
					if r, err = readRefstate(refstate); err != nil {
						return err
					}
				}
				if firmware != "" {
					l, err := readEventLog(firmware)
					if err != nil {
						return err
					}
					fw, err := policygen.MBRefstateWithoutKernels(l)
					if err != nil {
						return fmt.Errorf("%s: %w", firmware, err)
					}
					if r == nil {
						r = fw
					} else if r.AddFirmware(fw.ScrtmAndBios[0]) {
						a.note("zest: added the firmware of %s", firmware)
					}
				}
				if !chain && refstate != "" && firmware == "" {
					return usageErrorf("nothing to add to %s: give --shim, --grub, --kernel, --initrd and --cmdline, or --firmware", refstate)
				}
			default:
				return usageErrorf("give --eventlog, --merge, or boot components with --refstate or --firmware")
			}
			if chain {
				if merge {
					return usageErrorf("--merge takes only refstate files")
				}
				k, err := policygen.BootChain(cmd.Context(), files)
				if err != nil {
					return err
				}
				if r.AddKernel(k) {
					a.note("zest: added boot chain (kernel authenticode %x)", []byte(k.KernelAuthcode))
				} else {
					a.note("zest: the boot chain is already in the refstate")
				}
			}
			b, err := r.Marshal()
			if err != nil {
				return err
			}
			if err := a.writeOutput(out, b); err != nil {
				return err
			}
			a.note("zest: refstate: secure boot %v, %d firmware and %d boot chain alternative(s), %d db, %d dbx", r.HasSecureBoot, len(r.ScrtmAndBios), len(r.Kernels), len(r.DB), len(r.DBX))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&eventLog, "eventlog", "", "golden machine's event log `FILE` (binary_bios_measurements, raw or base64)")
	f.BoolVar(&withoutSB, "without-secureboot", false, "accept a log with Secure Boot off (pins vmlinuz's file digest instead of its Authenticode)")
	f.StringVar(&refstate, "refstate", "", "existing refstate `FILE` to add a boot chain or firmware to")
	f.StringVar(&firmware, "firmware", "", "golden event log `FILE` whose firmware, Secure Boot keys and MokLists to use")
	f.StringVar(&files.Shim, "shim", "", "shim image: `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Grub, "grub", "", "GRUB image: `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Kernel, "kernel", "", "kernel (vmlinuz with EFI stub): `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Initrd, "initrd", "", "initrd `FILE` as GRUB loads it (or PKG:/path)")
	f.BoolVar(&files.NoInitrd, "no-initrd", false, "the boot measures no initrd (GRUB chainloader, Linux 6.1 stub): initrd_unmeasured instead of initrd_plain_sha256")
	f.StringVar(&files.Cmdline, "cmdline", "", "kernel command line as GRUB logs it (`STR`)")
	f.BoolVar(&merge, "merge", false, "merge the refstate files given as arguments")
	f.StringVarP(&out, "output", "o", "", "write the refstate to `FILE` atomically (default: stdout)")
	return c
}

func readRefstate(name string) (*policygen.MBRefstate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return policygen.ParseMBRefstate(b, name)
}

func (a *app) eventlogCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "eventlog",
		Short: "Inspect TCG PC Client (UEFI measured boot) event logs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing subcommand")
		},
	}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show FILE",
		Short: "List the events of a binary event log (raw or base64) and its replayed PCRs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := readEventLog(args[0])
			if err != nil {
				return err
			}
			doc := describeLog(l)
			if asJSON {
				b, err := json.MarshalIndent(doc, "", "  ")
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(append(b, '\n'))
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			bank := doc.Banks[0]
			for _, b := range doc.Banks {
				if b == "sha256" {
					bank = b
				}
			}
			fmt.Fprintf(tw, "#\tPCR\tTYPE\t%s\tDESCRIPTION\n", strings.ToUpper(bank))
			for _, e := range doc.Events {
				d := e.Digests[bank]
				if len(d) > 16 {
					d = d[:16] + "…"
				}
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", e.Index, e.PCR, e.Type, d, oneLine(e.Description, 90))
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "\n%s, banks %s, %d events\n", doc.Format, strings.Join(doc.Banks, " "), len(doc.Events))
			for _, b := range doc.Banks {
				pcrs := doc.PCRs[b]
				keys := make([]int, 0, len(pcrs))
				for k := range pcrs {
					n, _ := strconv.Atoi(k)
					keys = append(keys, n)
				}
				sort.Ints(keys)
				for _, k := range keys {
					fmt.Fprintf(a.stdout, "%s PCR %-2d %s\n", b, k, pcrs[strconv.Itoa(k)])
				}
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	c.AddCommand(show)
	return c
}

func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len([]rune(s)) > n {
		return string([]rune(s)[:n]) + "…"
	}
	return s
}

type logDoc struct {
	Format string                       `json:"format"`
	Banks  []string                     `json:"banks"`
	Events []eventDoc                   `json:"events"`
	PCRs   map[string]map[string]string `json:"pcrs"`
}

type eventDoc struct {
	Index       int               `json:"index"`
	Offset      int               `json:"offset"`
	PCR         int               `json:"pcr"`
	Type        string            `json:"type"`
	Digests     map[string]string `json:"digests"`
	Size        int               `json:"size"`
	Description string            `json:"description"`
}

func describeLog(l *eventlog.Log) logDoc {
	doc := logDoc{Format: l.Format.String(), Events: []eventDoc{}, PCRs: map[string]map[string]string{}}
	for _, b := range l.Banks {
		name := policygen.MBAlgName(b.Algorithm)
		if b.Algorithm == "" {
			name = fmt.Sprintf("0x%04x", uint16(b.ID))
		}
		doc.Banks = append(doc.Banks, name)
		if b.Algorithm == "" {
			continue
		}
		if rep, err := l.Replay(b.Algorithm); err == nil {
			m := map[string]string{}
			for pcr, v := range rep {
				m[strconv.Itoa(pcr)] = hex.EncodeToString(v)
			}
			doc.PCRs[name] = m
		}
	}
	for i := range l.Events {
		e := &l.Events[i]
		ed := eventDoc{Index: e.Index, Offset: e.Offset, PCR: e.PCR, Type: e.Type.String(), Digests: map[string]string{}, Size: len(e.Data), Description: describe(e)}
		for _, d := range e.Digests {
			name := policygen.MBAlgName(d.Algorithm)
			if d.Algorithm == "" {
				name = fmt.Sprintf("0x%04x", uint16(d.ID))
			}
			ed.Digests[name] = hex.EncodeToString(d.Value)
		}
		doc.Events = append(doc.Events, ed)
	}
	return doc
}

// describe renders an event's data in one line; decoding errors are shown,
// never fatal.
func describe(e *eventlog.Event) string {
	switch e.Type {
	case eventlog.EV_S_CRTM_VERSION:
		s, _ := eventlog.CRTMVersion(e)
		return s
	case eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB2:
		fb, err := eventlog.ParseFirmwareBlob(e)
		if err != nil {
			return "malformed: " + err.Error()
		}
		return strings.TrimSpace(fmt.Sprintf("%s base 0x%x length 0x%x", fb.Description, fb.Base, fb.Length))
	case eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, eventlog.EV_EFI_VARIABLE_BOOT, eventlog.EV_EFI_VARIABLE_BOOT2, eventlog.EV_EFI_VARIABLE_AUTHORITY:
		v, err := eventlog.ParseVariable(e)
		if err != nil {
			return "malformed: " + err.Error()
		}
		s := fmt.Sprintf("%s (%s) %d bytes", v.Name, v.VendorGUID, len(v.Data))
		if sigs, err := eventlog.ParseSignatureLists(v.Data); err == nil && len(sigs) > 0 && e.Type == eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG {
			s += fmt.Sprintf(", %d signatures", len(sigs))
		}
		if v.Name == "SecureBoot" && len(v.Data) == 1 {
			s = fmt.Sprintf("SecureBoot = %d", v.Data[0])
		}
		return s
	case eventlog.EV_EFI_BOOT_SERVICES_APPLICATION, eventlog.EV_EFI_BOOT_SERVICES_DRIVER, eventlog.EV_EFI_RUNTIME_SERVICES_DRIVER:
		im, err := eventlog.ParseImageLoad(e)
		if err != nil {
			return "malformed: " + err.Error()
		}
		if p := im.FilePath(); p != "" {
			return p
		}
		if t := im.Text(); t != "" {
			return t
		}
		return fmt.Sprintf("image at 0x%x, %d bytes, no device path", im.Location, im.Length)
	case eventlog.EV_IPL:
		s, _ := eventlog.IPLString(e)
		return s
	case eventlog.EV_EFI_ACTION, eventlog.EV_ACTION:
		s, _ := eventlog.ActionString(e)
		return s
	case eventlog.EV_SEPARATOR:
		return hex.EncodeToString(e.Data)
	case eventlog.EV_NO_ACTION:
		na, err := eventlog.ParseNoAction(e)
		if err != nil {
			return "malformed: " + err.Error()
		}
		if na.StartupLocality != nil {
			return fmt.Sprintf("StartupLocality %d", *na.StartupLocality)
		}
		return na.Signature
	}
	if t := bytes.TrimRight(e.Data, "\x00"); len(t) > 0 && printable(t) {
		return string(t)
	}
	if len(e.Data) <= 32 {
		return hex.EncodeToString(e.Data)
	}
	return hex.EncodeToString(e.Data[:32]) + "…"
}

func (a *app) pcrCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "pcr",
		Short: "Predict PCR values",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing subcommand")
		},
	}
	var (
		eventLog, pcrList string
		cmdline           string
		refstateFile      string
		kernelTwice       bool
		asJSON            bool
		files             policygen.BootChainFiles
	)
	predict := &cobra.Command{
		Use:   "predict --eventlog GOLDEN [--shim|--grub|--kernel|--initrd FILE|PKG] [--cmdline STR] | --refstate FILE",
		Short: "Expected PCR 4/7/8/9 per bank after replacing boot components of a golden boot",
		Long: `Replays a golden machine's event log in every bank with the replaced
components' digests substituted (shim, GRUB and kernel Authenticode in
PCR 4; kernel and initrd file digests and the kernel command line in PCR 8
and 9), like systemd-pcrlock's prediction. PCR 7 keeps the golden value:
the new images must be signed by the same certificates.

With --refstate instead, prints PCR 4 (sha256) of each of the refstate's
boot chains assuming EDK2's order (firmware_apps, the boot-option action,
the separator, shim, GRUB, kernel); a golden log is exact.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if refstateFile != "" {
				if eventLog != "" || files != (policygen.BootChainFiles{}) || cmd.Flags().Changed("cmdline") || cmd.Flags().Changed("pcrs") {
					return usageErrorf("--refstate predicts PCR 4 of its own boot chains; it takes no --eventlog, components or --pcrs")
				}
				return a.predictFromRefstate(refstateFile, kernelTwice, asJSON)
			}
			if eventLog == "" {
				return usageErrorf("--eventlog is required (the golden boot to predict from), or --refstate")
			}
			var pcrs []int
			for _, s := range strings.Split(pcrList, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 0 || n > 23 {
					return usageErrorf("--pcrs %q: want a comma-separated list of PCR numbers 0-23", pcrList)
				}
				pcrs = append(pcrs, n)
			}
			l, err := readEventLog(eventLog)
			if err != nil {
				return err
			}
			var algs []digests.Algorithm
			for _, b := range l.Banks {
				if b.Algorithm != "" {
					algs = append(algs, b.Algorithm)
				}
			}
			var rep mb.Replacements
			for _, c := range []struct {
				src  string
				role policygen.ComponentRole
				dst  **policygen.ComponentDigests
			}{{files.Shim, policygen.RoleShim, &rep.Shim}, {files.Grub, policygen.RoleGrub, &rep.Grub},
				{files.Kernel, policygen.RoleKernel, &rep.Kernel}, {files.Initrd, policygen.RoleInitrd, &rep.Initrd}} {
				if c.src == "" {
					continue
				}
				d, err := policygen.ReadComponent(cmd.Context(), c.src, c.role, algs)
				if err != nil {
					return err
				}
				*c.dst = &d
			}
			if cmd.Flags().Changed("cmdline") {
				rep.Cmdline = &cmdline
			}
			p, err := mb.PredictFromLog(l, rep)
			if err != nil {
				return fmt.Errorf("%s: %w", eventLog, err)
			}
			type value struct {
				PCR   int    `json:"pcr"`
				Bank  string `json:"bank"`
				Value string `json:"value"`
			}
			doc := struct {
				Values   []value            `json:"values"`
				Replaced []mb.ReplacedEvent `json:"replaced"`
			}{Values: []value{}, Replaced: p.Replaced}
			if doc.Replaced == nil {
				doc.Replaced = []mb.ReplacedEvent{}
			}
			for _, alg := range p.Banks() {
				sel := p.Select(alg, pcrs)
				for _, n := range pcrs {
					doc.Values = append(doc.Values, value{PCR: n, Bank: policygen.MBAlgName(alg), Value: hex.EncodeToString(sel[n])})
				}
			}
			if asJSON {
				b, err := json.MarshalIndent(doc, "", "  ")
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(append(b, '\n'))
				return err
			}
			for _, v := range doc.Values {
				fmt.Fprintf(a.stdout, "%s:%d %s\n", v.Bank, v.PCR, v.Value)
			}
			for _, r := range doc.Replaced {
				a.note("zest: replaced event %d (PCR %d, %s)", r.Index, r.PCR, r.Component)
			}
			return nil
		},
	}
	f := predict.Flags()
	f.StringVar(&eventLog, "eventlog", "", "golden machine's event log `FILE` (raw or base64)")
	f.StringVar(&files.Shim, "shim", "", "new shim: `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Grub, "grub", "", "new GRUB: `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Kernel, "kernel", "", "new kernel: `FILE`, PKG.deb|PKG.rpm or PKG.deb|PKG.rpm:/path")
	f.StringVar(&files.Initrd, "initrd", "", "new initrd `FILE`")
	f.StringVar(&cmdline, "cmdline", "", "new kernel command line as GRUB logs it (`STR`)")
	f.StringVar(&pcrList, "pcrs", "4,7,8,9", "PCRs to print (`LIST`)")
	f.BoolVar(&asJSON, "json", false, "machine-readable output")
	f.StringVar(&refstateFile, "refstate", "", "predict PCR 4 (sha256) of each boot chain of refstate `FILE`, assuming EDK2's event order")
	f.BoolVar(&kernelTwice, "kernel-twice", false, "with --refstate: the kernel is logged twice in PCR 4 (GRUB verifies it through shim, then loads it)")
	c.AddCommand(predict)
	return c
}

func (a *app) predictFromRefstate(name string, kernelTwice, asJSON bool) error {
	ref, err := readRefstate(name)
	if err != nil {
		return err
	}
	vals, err := mb.PredictPCR4(ref, mb.PCR4Options{KernelTwice: kernelTwice})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	type value struct {
		PCR    int    `json:"pcr"`
		Bank   string `json:"bank"`
		Value  string `json:"value"`
		Kernel int    `json:"kernel"`
	}
	doc := struct {
		Values []value `json:"values"`
	}{Values: []value{}}
	for i, v := range vals {
		doc.Values = append(doc.Values, value{PCR: 4, Bank: "sha256", Value: hex.EncodeToString(v), Kernel: i})
	}
	if asJSON {
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		_, err = a.stdout.Write(append(b, '\n'))
		return err
	}
	for _, v := range doc.Values {
		fmt.Fprintf(a.stdout, "sha256:4 %s  kernels[%d]\n", v.Value, v.Kernel)
	}
	return nil
}
