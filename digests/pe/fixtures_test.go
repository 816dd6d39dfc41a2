package pe

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

const fixtureDir = "../../fixtures/pe"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openFixture(t testing.TB, name string) *File {
	t.Helper()
	fh, err := os.Open(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(fh, st.Size(), fh.Name())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readPEM(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(readFixture(t, name))
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFixtureDigests checks every line of fixtures/pe/expected.txt, whose
// values come from pesign, osslsigncode and dd+sha256sum (gen.sh), never
// from zest.
func TestFixtureDigests(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(readFixture(t, "expected.txt")))
	seen := map[string]bool{}
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 5 {
			t.Fatalf("expected.txt: bad line %q", line)
		}
		name, variant, alg, want, source := fs[0], fs[1], digests.Algorithm(fs[2]), fs[3], fs[4]
		if len(want) != 2*alg.Size() {
			t.Fatalf("expected.txt: %q: digest is not %s", line, alg)
		}
		seen[name] = true
		lines++
		t.Run(name+"/"+variant+"/"+string(alg)+"/"+source, func(t *testing.T) {
			f := openFixture(t, name)
			var got []byte
			var err error
			switch variant {
			case "edk2":
				got, err = f.Authenticode(alg)
			case "padded":
				got, err = f.AuthenticodePadded(alg)
			case "signed":
				var sigs []*Signature
				if sigs, err = f.Signatures(); err == nil {
					var galg digests.Algorithm
					galg, got = sigs[0].SignedDigest()
					if galg != alg {
						t.Errorf("signed digest algorithm %s, want %s", galg, alg)
					}
				}
			default:
				t.Fatalf("unknown variant %q", variant)
			}
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != want {
				t.Errorf("%s %s: got %x, want %s (from %s)", variant, alg, got, want, source)
			}
		})
	}
	names, _ := filepath.Glob(filepath.Join(fixtureDir, "*.efi"))
	for _, n := range names {
		if !seen[filepath.Base(n)] {
			t.Errorf("%s has no expected digest in expected.txt", n)
		}
	}
	if lines < 20 {
		t.Errorf("only %d expected digests", lines)
	}
}

// TestSignedEqualsAuthenticode: the digest the signer embedded is the one
// zest computes for the signed file, and the certificate set is the one the
// signer was given.
func TestSignedEqualsAuthenticode(t *testing.T) {
	signer, ca := readPEM(t, "signer.pem"), readPEM(t, "ca.pem")
	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
	}{
		{"signed-sbsign.efi", []*x509.Certificate{signer}},
		{"signed-osslsigncode.efi", []*x509.Certificate{signer, ca}},
		{"signed-sha1.efi", []*x509.Certificate{signer, ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openFixture(t, tc.name)
			sigs, err := f.Signatures()
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != 1 {
				t.Fatalf("%d signatures, want 1", len(sigs))
			}
			alg, signed := sigs[0].SignedDigest()
			got, err := f.Authenticode(alg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, signed) {
				t.Errorf("Authenticode %s %x != signed %x", alg, got, signed)
			}
			if !slices.EqualFunc(sigs[0].Certificates, tc.certs, (*x509.Certificate).Equal) {
				t.Errorf("certificates %v, want %v", subjects(sigs[0].Certificates), subjects(tc.certs))
			}
			if sigs[0].Signer == nil || !sigs[0].Signer.Equal(signer) {
				t.Errorf("Signer = %v, want %s", sigs[0].Signer, signer.Subject)
			}
			fh, _ := os.Open(filepath.Join(fixtureDir, tc.name))
			defer fh.Close()
			certs, err := Signers(fh, f.Size())
			if err != nil || len(certs) != len(tc.certs) {
				t.Errorf("Signers: %d certificates, %v", len(certs), err)
			}
		})
	}
}

func subjects(cs []*x509.Certificate) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Subject.String())
	}
	return s
}

// TestPaddingPitfall: signing an odd-size unsigned image changes what the
// firmware measures. EDK2's digest of odd.efi is not the digest sbsign
// embedded when it signed that same program; the padded variant is.
func TestPaddingPitfall(t *testing.T) {
	odd := openFixture(t, "odd.efi")
	if odd.Size()%8 == 0 {
		t.Fatal("odd.efi is not odd-sized")
	}
	sigs, err := openFixture(t, "signed-sbsign.efi").Signatures()
	if err != nil {
		t.Fatal(err)
	}
	_, signed := sigs[0].SignedDigest()
	edk2, _ := odd.Authenticode(digests.SHA256)
	padded, _ := odd.AuthenticodePadded(digests.SHA256)
	if bytes.Equal(edk2, signed) {
		t.Error("EDK2 digest of the unsigned odd-size file equals the signed digest; padding rule lost")
	}
	if !bytes.Equal(padded, signed) {
		t.Errorf("padded %x != signed %x", padded, signed)
	}
	if _, err := odd.Signatures(); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Signatures of unsigned image: %v, want ErrUnsigned", err)
	}
}

// TestHeaderOffsets checks the header offsets the reference
// (§10.3) lists: e_lfanew 0x80 gives CheckSum at 0xD8 for both kinds, and
// the certificate entry at 0x118 (PE32) or 0x128 (PE32+).
func TestHeaderOffsets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		certEntry int64
		plus      bool
	}{{"pe32.efi", 0x118, false}, {"odd.efi", 0x128, true}, {"nrva4.efi", -1, true}} {
		f := openFixture(t, tc.name)
		if f.checksumOffset != 0xd8 || f.certEntryOffset != tc.certEntry || f.PE32Plus != tc.plus {
			t.Errorf("%s: CheckSum at 0x%x, cert entry at 0x%x, PE32+ %v; want 0xd8, 0x%x, %v",
				tc.name, f.checksumOffset, f.certEntryOffset, f.PE32Plus, tc.certEntry, tc.plus)
		}
	}
	// unsorted.efi: the ranges derived by hand in fixtures/pe/README.md.
	rs, err := openFixture(t, "unsorted.efi").Ranges()
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]int64
	for _, r := range rs {
		got = append(got, [2]int64{r.Offset, r.Offset + r.Length})
	}
	want := [][2]int64{{0, 0xd8}, {0xdc, 0x128}, {0x130, 0x400}, {0x600, 0xa00}, {0xa00, 0xc00}, {0xc00, 0xe00}, {0xc00, 0xe40}}
	if !slices.Equal(got, want) {
		t.Errorf("ranges %x, want %x", got, want)
	}
}
