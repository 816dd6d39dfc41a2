package policygen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/deb"
	"github.com/zest-attest/zest/digests/pe"
	"github.com/zest-attest/zest/digests/rpm"
)

// maxComponentSize bounds a boot component read into memory (shim, GRUB,
// kernel, initrd): 1 GiB.
const maxComponentSize = 1 << 30

// BootChainFiles names the components of one boot chain. Each of Shim,
// Grub, Kernel and Initrd is a file path, or a Debian or RPM package written
// "PKG.deb" / "PKG.rpm" (the member is found by its role: shim*.efi.signed
// or shimx64.efi, grub*.efi.signed or grubx64.efi, /boot/vmlinuz-* or
// /lib/modules/*/vmlinuz) or
// "PKG.deb:/path/in/package" / "PKG.rpm:/path/in/package". RPM members are
// checked against the header's file digest.
type BootChainFiles struct {
	Shim, Grub, Kernel, Initrd string
	// NoInitrd says the boot measures no initrd (GRUB chainloads the
	// kernel and its EFI stub loads initrd= unmeasured, as Linux 6.1's
	// does): the entry gets InitrdUnmeasured instead of InitrdPlain, and
	// zest's evaluator requires that no initrd is logged. Initrd must then
	// be empty.
	NoInitrd bool
	// Cmdline is the kernel command line as GRUB logs it after
	// "kernel_cmdline: " (the linux command's arguments, kernel path
	// first, e.g. "/vmlinuz-6.1.0-28-amd64 root=UUID=... ro quiet"), or
	// after "grub_cmd: chainloader " when GRUB chainloads the kernel.
	Cmdline string
}

// BootChain computes the refstate entry of a boot chain without any machine:
// shim, GRUB and kernel Authenticode sha256 exactly as EDK2 and shim measure
// them into PCR 4, the kernel's and initrd's plain sha256 (GRUB's PCR 9
// measurement of the files) and the escaped command line. The entry carries
// both kernel digests, so it fits a refstate with or without Secure Boot.
func BootChain(ctx context.Context, f BootChainFiles) (MBKernel, error) {
	var k MBKernel
	var errs []error
	need := func(what, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("boot chain: no %s given", what))
		}
	}
	need("shim", f.Shim)
	need("GRUB", f.Grub)
	need("kernel", f.Kernel)
	if f.NoInitrd {
		if f.Initrd != "" {
			errs = append(errs, errors.New("boot chain: an initrd given for a chain that measures none"))
		}
	} else {
		need("initrd", f.Initrd)
	}
	if err := errors.Join(errs...); err != nil {
		return k, err
	}
	var err error
	if k.ShimAuthcode, _, err = authcode(ctx, f.Shim, roleShim); err != nil {
		return k, err
	}
	if k.GrubAuthcode, _, err = authcode(ctx, f.Grub, roleGrub); err != nil {
		return k, err
	}
	if k.KernelAuthcode, k.VmlinuzPlain, err = authcode(ctx, f.Kernel, roleKernel); err != nil {
		return k, err
	}
	k.InitrdUnmeasured = f.NoInitrd
	if !f.NoInitrd {
		b, name, err := readComponent(ctx, f.Initrd, roleInitrd)
		if err != nil {
			return k, err
		}
		if len(b) == 0 {
			return k, fmt.Errorf("initrd %s: empty file", name)
		}
		sum := sha256.Sum256(b)
		k.InitrdPlain = sum[:]
	}
	k.KernelCmdline = PythonRegexpEscape(f.Cmdline)
	return k, nil
}

type role struct {
	name  string
	match func(p string) bool
}

var (
	roleShim = role{"shim", func(p string) bool {
		b := path.Base(p)
		return strings.HasPrefix(b, "shim") && (strings.HasSuffix(b, ".efi.signed") || b == "shimx64.efi" || b == "shimaa64.efi")
	}}
	roleGrub = role{"GRUB", func(p string) bool {
		b := path.Base(p)
		return strings.HasPrefix(b, "grub") && (strings.HasSuffix(b, ".efi.signed") || b == "grubx64.efi" || b == "grubaa64.efi")
	}}
	roleKernel = role{"kernel", func(p string) bool {
		return strings.HasPrefix(p, "/boot/vmlinuz-") ||
			path.Base(p) == "vmlinuz" && (strings.HasPrefix(p, "/lib/modules/") || strings.HasPrefix(p, "/usr/lib/modules/"))
	}}
	roleInitrd = role{"initrd", func(p string) bool { return strings.HasPrefix(p, "/boot/initrd.img-") }}
)

// authcode returns the Authenticode sha256 and the plain sha256 of a PE image.
func authcode(ctx context.Context, src string, r role) (auth, plain Hex, err error) {
	b, name, err := readComponent(ctx, src, r)
	if err != nil {
		return nil, nil, err
	}
	img, err := pe.Open(bytes.NewReader(b), int64(len(b)), name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.name, err)
	}
	d, err := img.Authenticode(digests.SHA256)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.name, err)
	}
	sum := sha256.Sum256(b)
	return d, sum[:], nil
}

// readComponent reads a file, or a member of a .deb or .rpm (see
// BootChainFiles).
func readComponent(ctx context.Context, src string, r role) ([]byte, string, error) {
	if pkg, member, ok := splitPkg(src, ".rpm"); ok {
		match := r.match
		if member != "" {
			match = func(p string) bool { return p == member }
		}
		name, b, err := rpm.Extract(ctx, pkg, match, maxComponentSize)
		if err != nil {
			return nil, src, fmt.Errorf("%s: %w", r.name, err)
		}
		return b, pkg + ":" + name, nil
	}
	pkg, member, isDeb := splitPkg(src, ".deb")
	if !isDeb {
		b, err := readBounded(src)
		if err != nil {
			return nil, src, fmt.Errorf("%s: %w", r.name, err)
		}
		return b, src, nil
	}
	d, err := deb.New(pkg, deb.Options{Algorithm: digests.SHA256, NoMergedUsr: true})
	if err != nil {
		return nil, src, fmt.Errorf("%s: %w", r.name, err)
	}
	var found []string
	var data []byte
	err = d.Data(ctx, func(e deb.Entry, content io.Reader) error {
		if !e.IsRegular() {
			return nil
		}
		if member != "" && e.Path != member || member == "" && !r.match(e.Path) {
			return nil
		}
		found = append(found, e.Path)
		if len(found) > 1 {
			return nil
		}
		if e.Size > maxComponentSize {
			return fmt.Errorf("%s is %d bytes, more than %d", e.Path, e.Size, maxComponentSize)
		}
		b, err := io.ReadAll(io.LimitReader(content, maxComponentSize+1))
		data = b
		return err
	})
	if err != nil {
		return nil, src, fmt.Errorf("%s: %s: %w", r.name, pkg, err)
	}
	switch {
	case len(found) == 0 && member != "":
		return nil, src, fmt.Errorf("%s: %s has no regular file %s", r.name, pkg, member)
	case len(found) == 0:
		return nil, src, fmt.Errorf("%s: %s has no %s image; name the file as %s:/path/in/package", r.name, pkg, r.name, pkg)
	case len(found) > 1:
		slices.Sort(found)
		return nil, src, fmt.Errorf("%s: %s has several candidates (%s); name one as %s:/path/in/package", r.name, pkg, strings.Join(found, ", "), pkg)
	}
	return data, pkg + ":" + found[0], nil
}

// splitPkg recognises "x.deb" and "x.deb:/member" (ext ".deb" or ".rpm").
func splitPkg(src, ext string) (pkg, member string, ok bool) {
	if strings.HasSuffix(src, ext) {
		return src, "", true
	}
	if i := strings.Index(src, ext+":/"); i >= 0 {
		return src[:i+len(ext)], path.Clean(src[i+len(ext)+1:]), true
	}
	return "", "", false
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	if st.Size() > maxComponentSize {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", name, st.Size(), maxComponentSize)
	}
	return io.ReadAll(io.LimitReader(f, maxComponentSize+1))
}

// AddKernel adds a boot chain alternative unless an identical one is
// already there, and reports whether it was added.
func (r *MBRefstate) AddKernel(k MBKernel) bool {
	for _, have := range r.Kernels {
		if have.Equal(k) {
			return false
		}
	}
	r.Kernels = append(r.Kernels, k.clone())
	return true
}

// AddFirmware adds a scrtm_and_bios alternative unless an identical one is
// already there, and reports whether it was added.
func (r *MBRefstate) AddFirmware(f MBFirmware) bool {
	for _, have := range r.ScrtmAndBios {
		if have.Equal(f) {
			return false
		}
	}
	r.ScrtmAndBios = append(r.ScrtmAndBios, MBFirmware{SCRTM: f.SCRTM.clone(), PlatformFirmware: cloneDigests(f.PlatformFirmware)})
	return true
}

// MergeMBRefstates combines refstates into one that accepts the machines
// any of them accepts, as far as the refstate format allows: firmware and
// kernel alternatives, PK/KEK/db/vendor_db signatures and MokList digests
// are united (the policy checks the logged values are members); dbx is
// intersected, because the policy demands that the logged dbx contains
// every refstate entry. Duplicates are dropped, first occurrence kept.
// Secure Boot mode must agree: a refstate has only one.
func MergeMBRefstates(refs ...*MBRefstate) (*MBRefstate, error) {
	if len(refs) == 0 {
		return nil, errors.New("merge: no refstates")
	}
	out := refs[0].Clone()
	out.ScrtmAndBios, out.Kernels = nil, nil
	out.PK, out.KEK, out.DB, out.VendorDB, out.MokDig, out.MokXDig, out.FirmwareApps = nil, nil, nil, nil, nil, nil, nil
	for i, r := range refs {
		if r.HasSecureBoot != out.HasSecureBoot {
			return nil, fmt.Errorf("merge: refstate %d has has_secureboot %v but refstate 1 has %v; a refstate has only one", i+1, r.HasSecureBoot, out.HasSecureBoot)
		}
		for _, f := range r.ScrtmAndBios {
			out.AddFirmware(f)
		}
		for _, k := range r.Kernels {
			out.AddKernel(k)
		}
		out.PK = unionSigs(out.PK, r.PK)
		out.KEK = unionSigs(out.KEK, r.KEK)
		out.DB = unionSigs(out.DB, r.DB)
		out.VendorDB = unionSigs(out.VendorDB, r.VendorDB)
		out.MokDig = unionDigests(out.MokDig, r.MokDig)
		out.MokXDig = unionDigests(out.MokXDig, r.MokXDig)
		out.FirmwareApps = unionDigests(out.FirmwareApps, r.FirmwareApps)
		if i > 0 {
			out.DBX = slices.DeleteFunc(out.DBX, func(s MBSignature) bool {
				return !slices.ContainsFunc(r.DBX, s.Equal)
			})
		}
	}
	out.DBX = unionSigs(nil, out.DBX) // dedupe
	out.normalize()
	return out, nil
}

func unionSigs(dst, src []MBSignature) []MBSignature {
	seen := make(map[string]bool, len(dst)+len(src))
	for _, s := range dst {
		seen[s.Owner+"/"+string(s.Data)] = true
	}
	for _, s := range src {
		key := s.Owner + "/" + string(s.Data)
		if !seen[key] {
			seen[key] = true
			dst = append(dst, MBSignature{Owner: s.Owner, Data: slices.Clone(s.Data)})
		}
	}
	return dst
}

func unionDigests(dst, src []MBDigest) []MBDigest {
	for _, d := range src {
		if !slices.ContainsFunc(dst, d.Equal) {
			dst = append(dst, d.clone())
		}
	}
	return dst
}

// ComponentRole names a boot component; it selects the member of a package.
type ComponentRole string

// The boot components BootChain and ReadComponent know.
const (
	RoleShim   ComponentRole = "shim"
	RoleGrub   ComponentRole = "grub"
	RoleKernel ComponentRole = "kernel"
	RoleInitrd ComponentRole = "initrd"
)

func (c ComponentRole) role() (role, error) {
	switch c {
	case RoleShim:
		return roleShim, nil
	case RoleGrub:
		return roleGrub, nil
	case RoleKernel:
		return roleKernel, nil
	case RoleInitrd:
		return roleInitrd, nil
	}
	return role{}, fmt.Errorf("unknown boot component %q", string(c))
}

// ComponentDigests holds a boot component's digests per bank: Authenticode
// (PE images: what firmware and shim extend into PCR 4) and plain (what
// GRUB extends into PCR 9 for a file it reads).
type ComponentDigests struct {
	Source       string // file, or PKG.deb:/member
	Authenticode map[digests.Algorithm][]byte
	Plain        map[digests.Algorithm][]byte
}

// ReadComponent reads a boot component (a file, "PKG.deb" or
// "PKG.deb:/member", see BootChainFiles) and computes its digests in each
// of algs. shim, grub and kernel must be PE images; an initrd gets plain
// digests only.
func ReadComponent(ctx context.Context, src string, which ComponentRole, algs []digests.Algorithm) (ComponentDigests, error) {
	c := ComponentDigests{Plain: map[digests.Algorithm][]byte{}}
	r, err := which.role()
	if err != nil {
		return c, err
	}
	b, name, err := readComponent(ctx, src, r)
	if err != nil {
		return c, err
	}
	c.Source = name
	var img *pe.File
	if which != RoleInitrd {
		if img, err = pe.Open(bytes.NewReader(b), int64(len(b)), name); err != nil {
			return c, fmt.Errorf("%s: %w", r.name, err)
		}
		c.Authenticode = map[digests.Algorithm][]byte{}
	}
	for _, alg := range algs {
		h, err := alg.New()
		if err != nil {
			return c, err
		}
		h.Write(b)
		c.Plain[alg] = h.Sum(nil)
		if img != nil {
			d, err := img.Authenticode(alg)
			if err != nil {
				return c, fmt.Errorf("%s: %w", r.name, err)
			}
			c.Authenticode[alg] = d
		}
	}
	return c, nil
}
