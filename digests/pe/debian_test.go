package pe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

// Real EFI binaries from Debian 12 packages. They are too big to commit, so
// the test downloads them with `apt-get download` into a cache under
// os.TempDir() and compares zest with `pesign -h` (sha256 and sha1) and,
// for signed binaries, with the digest signed inside them. Without the
// tools or the network the test skips, unless CI=true, where it fails.

// knownDebian holds digests the shared reference
// (shared/reference/authenticode-and-firmware.md §10.1, §10.2) computed for
// specific files with pesign, osslsigncode, saferwall/pe and a from-scratch
// Python implementation, keyed by the file's plain sha256. They are checked
// only when apt serves exactly that file.
var knownDebian = map[string]struct{ sha256, sha1, padded string }{
	// systemd-boot-efi 252.39-1~deb12u2: unsigned, 140891 bytes (size % 8 = 3).
	"10288fece5e90ce3ba3e7160f49695b022d648f7ef41774678db8c77774db167": {
		sha256: "7843e376e57323bcdfebcffc8d5109eb39721c83d8bedab1dfd6431596875c2c",
		sha1:   "0c3e7b565f81a57d1734e9bd815be308b7c4b66e",
		padded: "9bf2519c746ec66b569300e423127a9361b47af7f66783c7e1378fb055671ad4",
	},
	// linux-image-6.1.0-56-cloud-amd64 6.1.192-2: Debian-signed vmlinuz.
	"51349501a3d1ff83836437d2b365fd2d57f2feb8642d315e5181dec23d4c3275": {
		sha256: "5f21ff2c0d5d899842b28a8b19901ba72cf7a7ab93c02a77fadc6ff72be85b31",
		sha1:   "1ddcf2a34ae62bd03d6167a2dc54c2a82add73d4",
		padded: "5f21ff2c0d5d899842b28a8b19901ba72cf7a7ab93c02a77fadc6ff72be85b31",
	},
}

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func debCache(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), "zest-pe-debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// debianFile returns the path of member (a tar pattern) extracted from the
// cached .deb of pkg, downloading it first if needed.
func debianFile(t *testing.T, pkg, member string) string {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb", "tar", "pesign"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "needs %s (apt-get install -y pesign)", tool)
		}
	}
	dir := debCache(t)
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable(t, "apt-get download %s: %v: %s", pkg, err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(debs) == 0 {
			unavailable(t, "apt-get download %s left no .deb in %s", pkg, dir)
		}
	}
	deb := debs[len(debs)-1]
	out := filepath.Join(dir, "x", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if got, _ := filepath.Glob(filepath.Join(out, member)); len(got) == 1 {
		return got[0]
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3"`, "sh", deb, out, member)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s from %s: %v: %s", member, deb, err, b)
	}
	got, _ := filepath.Glob(filepath.Join(out, member))
	if len(got) != 1 {
		t.Fatalf("%s in %s: %d matches", member, deb, len(got))
	}
	return got[0]
}

func pesignHash(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("pesign", append(append([]string{"-h"}, args...), "-i", path)...).Output()
	if err != nil {
		t.Fatalf("pesign -h %v %s: %v", args, path, err)
	}
	h, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "hash: ")
	if !ok {
		t.Fatalf("pesign output %q", out)
	}
	return h
}

func TestDebianBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Debian packages")
	}
	kernelPkg := "linux-image-cloud-amd64"
	if out, err := exec.Command("apt-cache", "depends", kernelPkg).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Depends: "); ok && strings.HasPrefix(p, "linux-image-") {
				kernelPkg = p
				break
			}
		}
	}
	for _, tc := range []struct {
		pkg, member string
		signed      bool
		signer      string // substring of some certificate subject
	}{
		{"shim-signed", "./usr/lib/shim/shimx64.efi.signed", true, "Microsoft"},
		{"grub-efi-amd64-signed", "./usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", true, "Debian"},
		{kernelPkg, "./boot/vmlinuz-*", true, "Debian"},
		{"systemd-boot-efi", "./usr/lib/systemd/boot/efi/systemd-bootx64.efi", false, ""},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			path := debianFile(t, tc.pkg, tc.member)
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			st, _ := fh.Stat()
			f, err := Open(fh, st.Size(), path)
			if err != nil {
				t.Fatal(err)
			}
			got := map[digests.Algorithm]string{}
			for _, alg := range []digests.Algorithm{digests.SHA256, digests.SHA1} {
				d, err := f.Authenticode(alg)
				if err != nil {
					t.Fatal(err)
				}
				got[alg] = hex.EncodeToString(d)
			}
			padded, _ := f.AuthenticodePadded(digests.SHA256)
			if want := pesignHash(t, path); got[digests.SHA256] != want {
				t.Errorf("sha256 %s, pesign -h %s", got[digests.SHA256], want)
			}
			if want := pesignHash(t, path, "-d", "sha1"); got[digests.SHA1] != want {
				t.Errorf("sha1 %s, pesign -h -d sha1 %s", got[digests.SHA1], want)
			}
			if want := pesignHash(t, path, "-P"); hex.EncodeToString(padded) != want {
				t.Errorf("padded %x, pesign -h -P %s", padded, want)
			}
			plain := sha256.New()
			fh.Seek(0, io.SeekStart)
			io.Copy(plain, fh)
			if k, ok := knownDebian[hex.EncodeToString(plain.Sum(nil))]; ok {
				if got[digests.SHA256] != k.sha256 || got[digests.SHA1] != k.sha1 || hex.EncodeToString(padded) != k.padded {
					t.Errorf("reference values: got %s %s %x, want %s %s %s", got[digests.SHA256], got[digests.SHA1], padded, k.sha256, k.sha1, k.padded)
				}
				t.Logf("%s matches the shared reference's values", filepath.Base(path))
			}
			t.Logf("%s: %d bytes, %d sections, authenticode sha256 %s", filepath.Base(path), f.Size(), len(f.Sections), got[digests.SHA256])
			sigs, err := f.Signatures()
			if !tc.signed {
				if err == nil {
					t.Errorf("unsigned file has %d signatures", len(sigs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range sigs {
				alg, signed := s.SignedDigest()
				d, _ := f.Authenticode(alg)
				if !bytes.Equal(d, signed) {
					t.Errorf("signature %d: signed %s digest %x != Authenticode %x", i, alg, signed, d)
				}
				if s.Signer == nil {
					t.Errorf("signature %d: signer certificate not found in the set", i)
				} else {
					t.Logf("signature %d: %s digest, signer %q, %d certificates", i, alg, s.Signer.Subject, len(s.Certificates))
				}
			}
			found := false
			for _, c := range sigs[0].Certificates {
				found = found || strings.Contains(c.Subject.String(), tc.signer)
			}
			if !found {
				t.Errorf("no certificate subject contains %q: %v", tc.signer, subjects(sigs[0].Certificates))
			}
		})
	}
}
