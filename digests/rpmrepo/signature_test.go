package rpmrepo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func readFixture(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoFixtures, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ecKey(t *testing.T) *ecdsa.PublicKey {
	t.Helper()
	blk, _ := pem.Decode(readFixture(t, "keys/repo-ec.pem"))
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PublicKey)
}

// TestSignedFixtures: repomd.xml signed by gpg (ed25519, detached,
// armored) and by openssl (ECDSA-SHA256 DER), both checked by those tools
// in gen.sh. A good signature opens and walks; a changed repomd.xml, a
// wrong key, the other kind of key, or a missing .asc is ErrSignature and
// yields nothing.
func TestSignedFixtures(t *testing.T) {
	gpgKeys := readFixture(t, "keys/repo-gpg.asc")
	other, err := openpgp.NewEntity("other", "", "other@zest.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var otherArm bytes.Buffer
	w, _ := armor.Encode(&otherArm, openpgp.PublicKeyType, nil)
	other.Serialize(w)
	w.Close()
	ring, err := parseKeyring(gpgKeys)
	if err != nil {
		t.Fatal(err)
	}
	fpr := hex.EncodeToString(ring[0].PrimaryKey.Fingerprint)
	der, _ := x509.MarshalPKIXPublicKey(ecKey(t))
	ecID := sha256.Sum256(der)

	type tc struct {
		name, variant string
		opts          Options
		tamper        bool
		noAsc         bool
		signedBy      string // "" means an ErrSignature is wanted
	}
	cases := []tc{
		{name: "gpg good", variant: "signed-gpg", opts: Options{OpenPGPKeys: gpgKeys}, signedBy: "openpgp:" + fpr},
		{name: "gpg binary keyring", variant: "signed-gpg", opts: Options{OpenPGPKeys: binaryRing(t, ring)}, signedBy: "openpgp:" + fpr},
		{name: "gpg two keys", variant: "signed-gpg", opts: Options{OpenPGPKeys: append(otherArm.Bytes(), gpgKeys...)}, signedBy: "openpgp:" + fpr},
		{name: "gpg wrong key", variant: "signed-gpg", opts: Options{OpenPGPKeys: otherArm.Bytes()}},
		{name: "gpg tampered repomd", variant: "signed-gpg", opts: Options{OpenPGPKeys: gpgKeys}, tamper: true},
		{name: "gpg missing asc", variant: "signed-gpg", opts: Options{OpenPGPKeys: gpgKeys}, noAsc: true},
		{name: "gpg sig, ec key", variant: "signed-gpg", opts: Options{VerifyKey: ecKey(t)}},
		{name: "ec good", variant: "signed-ec", opts: Options{VerifyKey: ecKey(t)}, signedBy: "ecdsa:" + hex.EncodeToString(ecID[:])},
		{name: "ec tampered repomd", variant: "signed-ec", opts: Options{VerifyKey: ecKey(t)}, tamper: true},
		{name: "ec sig, gpg key", variant: "signed-ec", opts: Options{OpenPGPKeys: gpgKeys}},
		{name: "both keys", variant: "signed-ec", opts: Options{VerifyKey: ecKey(t), OpenPGPKeys: gpgKeys}},
		{name: "garbage keyring", variant: "signed-gpg", opts: Options{OpenPGPKeys: []byte("not a key")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := mkRepo(t, c.variant)
			md := filepath.Join(dir, "repodata", "repomd.xml")
			if c.tamper {
				b, _ := os.ReadFile(md)
				b = bytes.Replace(b, []byte("<revision>1700000000</revision>"), []byte("<revision>1700000001</revision>"), 1)
				os.WriteFile(md, b, 0o644)
			}
			if c.noAsc {
				os.Remove(md + ".asc")
			}
			for _, loc := range []string{dir, serve(t, dir).URL} {
				ctx := context.Background()
				r, err := Open(ctx, loc, c.opts)
				if c.signedBy == "" {
					if !errors.Is(err, ErrSignature) {
						t.Errorf("%s: error %v, want ErrSignature", loc, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", loc, err)
				}
				if r.SignedBy() != c.signedBy {
					t.Errorf("SignedBy %q, want %q", r.SignedBy(), c.signedBy)
				}
				got, _, err := walk(t, loc, c.opts)
				if err != nil || !slices.Equal(got.set, expected(t, pkgList(t, c.variant))) {
					t.Errorf("%s: walk: %v", loc, err)
				}
			}
		})
	}
}

func binaryRing(t *testing.T, el openpgp.EntityList) []byte {
	var b bytes.Buffer
	for _, e := range el {
		if err := e.Serialize(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestOpenPGPExpiredSignature: a signature checked at a time before it was
// made does not verify (the check uses a clock, not "any time").
func TestOpenPGPExpiredSignature(t *testing.T) {
	ring, err := parseKeyring(readFixture(t, "keys/repo-gpg.asc"))
	if err != nil {
		t.Fatal(err)
	}
	md := readFixture(t, "signed-gpg/repodata/repomd.xml")
	sig := readFixture(t, "signed-gpg/repodata/repomd.xml.asc")
	if _, err := verifyOpenPGP(md, sig, ring, time.Now()); err != nil {
		t.Fatalf("now: %v", err)
	}
	if _, err := verifyOpenPGP(md, sig, ring, time.Unix(1000000000, 0)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("2001: %v", err)
	}
}
