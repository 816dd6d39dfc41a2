package imasig

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

const sigsDir = fixtures + "imasig/sigs/"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// helloDigests are the file digests of sigs/hello.txt ("hello\n") as printed
// by sha1sum/sha256sum/sha384sum/sha512sum (the sha256 one is also in
// keylime-runtime-policy.md §9.4).
var helloDigests = map[HashAlgo]string{
	HashSHA1:   "f572d396fae9206628714fb2ce00f72e94f2258f",
	HashSHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
	HashSHA384: "1d0f284efe3edea4b9ca3bd514fa134b17eae361ccc7a1eefeff801b9bd6604e01f21f6bf249ef030599f0c218f2ba8c",
	HashSHA512: "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629",
}

func TestHelloDigestsMatchFixture(t *testing.T) {
	sum := sha256.Sum256(readFile(t, sigsDir+"hello.txt"))
	if hex.EncodeToString(sum[:]) != helloDigests[HashSHA256] {
		t.Fatal("sigs/hello.txt is not \"hello\\n\"")
	}
}

// The signatures in fixtures/imasig/sigs were made by gen.sh with
// `openssl pkeyutl -sign -pkeyopt digest:<alg>` over the file digest, the
// header assembled with printf; keyids come from keyids.txt (openssl+sha1sum).
func TestVerifyOpenSSLSignatures(t *testing.T) {
	ids := opensslKeyIDs(t)
	tests := []struct {
		sig, key string
		algo     HashAlgo
		keyid    uint32
	}{
		{"hello.rsa2048.sha256.ima", "rsa2048.pub.pem", HashSHA256, ids["rsa2048.pub.pem"]},
		{"hello.rsa2048.sha1.ima", "rsa2048.pub.pem", HashSHA1, ids["rsa2048.pub.pem"]},
		{"hello.rsa2048.sha512.ima", "rsa2048.pub.pem", HashSHA512, ids["rsa2048.pub.pem"]},
		{"hello.rsa2048-skid-custom.sha256.ima", "rsa2048-skid-custom.crt.der", HashSHA256, 0x12345678},
		{"hello.ec-p256.sha256.ima", "ec-p256.pub.pem", HashSHA256, ids["ec-p256.pem"]},
		{"hello.ec-p256.sha1.ima", "ec-p256.pem", HashSHA1, ids["ec-p256.pem"]},
		{"hello.ec-p384.sha384.ima", "ec-p384.pubc.der", HashSHA384, ids["ec-p384.pem"]},
		{"hello.ec-p521.sha512.ima", "ec-p521.pkcs8.pem", HashSHA512, ids["ec-p521.pem"]},
	}
	for _, tt := range tests {
		t.Run(tt.sig, func(t *testing.T) {
			raw := readFile(t, sigsDir+tt.sig)
			sig, err := ParseSignature(raw)
			if err != nil {
				t.Fatal(err)
			}
			if sig.Type != TypeDigsig || sig.Version != 2 || sig.HashAlgo != tt.algo || sig.KeyID != tt.keyid || len(sig.Sig) != len(raw)-9 {
				t.Fatalf("header = %d %d %s %08x, want 3 2 %s %08x", sig.Type, sig.Version, sig.HashAlgo, sig.KeyID, tt.algo, tt.keyid)
			}
			var r Keyring
			if err := r.Add(loadKey(t, keysDir+tt.key)); err != nil {
				t.Fatal(err)
			}
			digest := mustHex(t, helloDigests[tt.algo])
			if err := r.Verify(sig, digest); err != nil {
				t.Fatalf("Verify: %v", err)
			}

			tampered := bytes.Clone(digest)
			tampered[0] ^= 1
			if err := r.Verify(sig, tampered); !errors.Is(err, ErrBadSignature) {
				t.Errorf("tampered digest: %v, want ErrBadSignature", err)
			}
			badSig := *sig
			badSig.Sig = bytes.Clone(sig.Sig)
			badSig.Sig[len(badSig.Sig)/2] ^= 0x40
			if err := r.Verify(&badSig, digest); !errors.Is(err, ErrBadSignature) {
				t.Errorf("tampered signature: %v, want ErrBadSignature", err)
			}
			if err := (&Keyring{}).Verify(sig, digest); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("empty keyring: %v, want ErrUnknownKey", err)
			}
			if err := r.Verify(sig, digest[1:]); !errors.Is(err, ErrDigestSize) {
				t.Errorf("short digest: %v, want ErrDigestSize", err)
			}
			// A different key filed under the same keyid must not verify,
			// and must not stop the right key from verifying.
			other := loadKey(t, keysDir+"ec-p521.pub.pem")
			if tt.key == "ec-p521.pkcs8.pem" {
				other = loadKey(t, keysDir+"ec-p256.pub.pem")
			}
			other.KeyID = tt.keyid
			var wrong Keyring
			_ = wrong.Add(other)
			if err := wrong.Verify(sig, digest); !errors.Is(err, ErrBadSignature) {
				t.Errorf("wrong key: %v, want ErrBadSignature", err)
			}
			_ = wrong.Add(loadKey(t, keysDir+tt.key))
			if err := wrong.Verify(sig, digest); err != nil {
				t.Errorf("right key after a wrong one: %v", err)
			}
		})
	}
}

// keylime-runtime-policy.md §9.4: the RSA signature of "hello\n" is
// deterministic, and its full security.ima value has a known SHA-256.
func TestReferenceRSAVector(t *testing.T) {
	raw := readFile(t, sigsDir+"hello.rsa2048.sha256.ima")
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != "d1be58ee7b90d6602b7bcb311cdb4e365c881504b8fc2e0a464535ba83661ce5" {
		t.Fatalf("fixture differs from the reference vector")
	}
	if !bytes.HasPrefix(raw, mustHex(t, "030204f3452d230100d245505d0d547eae")) || !bytes.HasSuffix(raw, mustHex(t, "17afa234f9")) {
		t.Fatalf("fixture bytes differ from the reference vector")
	}
	var r Keyring
	_ = r.Add(loadKey(t, keylimeKeys+"rsa2048pub.pem"))
	sig, err := ParseSignature(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(sig, mustHex(t, helloDigests[HashSHA256])); err != nil {
		t.Fatal(err)
	}
}

// Lines from Keylime's test/test_ima_verification.py (fixtures/imasig/keylime).
func TestKeylimeIMASigLines(t *testing.T) {
	f, err := os.Open(fixtures + "imasig/keylime/ima-sig.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, strings.Fields(s.Text()))
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	keyring, err := ParseKeyring(string(readFile(t, fixtures+"imasig/keylime/keyring.json")))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(l []string) (*Signature, []byte) {
		alg, d, _ := strings.Cut(l[3], ":")
		if alg != "sha256" {
			t.Fatalf("unexpected algorithm %s", alg)
		}
		sig, err := ParseSignature(mustHex(t, l[5]))
		if err != nil {
			t.Fatalf("%s: %v", l[4], err)
		}
		if sig.HashAlgo.Algorithm() != digests.SHA256 {
			t.Fatalf("%s: hash %s", l[4], sig.HashAlgo)
		}
		return sig, mustHex(t, d)
	}

	// /usr/bin/dd: RSA, verifies (Keylime's test asserts it).
	sig, d := parse(lines[0])
	if err := keyring.Verify(sig, d); err != nil {
		t.Errorf("/usr/bin/dd: %v", err)
	}
	// /usr/bin/zmore: secp256k1, which Keylime verifies and Go cannot.
	sig, d = parse(lines[1])
	var u *UnsupportedKeyError
	if err := keyring.Verify(sig, d); !errors.As(err, &u) || sig.KeyID != 0x531f4025 {
		t.Errorf("/usr/bin/zmore: %v, want an UnsupportedKeyError for 531f4025", err)
	}
	// BAD_SIGNATURES: sig_size 0x4800.
	var fe *FormatError
	if _, err := ParseSignature(mustHex(t, lines[2][5])); !errors.As(err, &fe) || fe.Offset != 7 {
		t.Errorf("bad sig_size: %v", err)
	}
}

func TestParseSignatureErrors(t *testing.T) {
	tests := []struct {
		name, hex string
		offset    int
		field     string
	}{
		{"empty", "", 0, "type"},
		{"digest xattr", "0404aabb", 0, "type"},
		{"hmac", "02", 0, "type"},
		{"type only", "03", 1, "version"},
		{"v1", "0301", 1, "version"},
		{"v3", "030304f3452d230001aa", 1, "version"},
		{"short header", "030204f345", 5, "header"},
		{"zero size", "030204f3452d230000", 7, "sig_size"},
		{"size too big", "030204f3452d230002aa", 7, "sig_size"},
		{"trailing byte", "030204f3452d230001aabb", 7, "sig_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignature(mustHex(t, tt.hex))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tt.offset || fe.Field != tt.field {
				t.Errorf("got offset %d field %s, want %d %s (%v)", fe.Offset, fe.Field, tt.offset, tt.field, err)
			}
		})
	}
}

func TestParseSignatureAccepts(t *testing.T) {
	// Portable EVM signatures (type 5) and unknown hash ids parse; Verify
	// then decides.
	sig, err := ParseSignature(mustHex(t, "050211f3452d230001aa"))
	if err != nil {
		t.Fatal(err)
	}
	if sig.Type != TypePortableDigsig || sig.HashAlgo != HashSM3 || sig.HashAlgo.String() != "sm3" || sig.KeyID != 0xf3452d23 {
		t.Errorf("parsed %+v", sig)
	}
	if err := (&Keyring{}).Verify(sig, make([]byte, 32)); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("sm3: %v, want ErrUnsupportedHash", err)
	}
	b, err := sig.MarshalBinary()
	if err != nil || hex.EncodeToString(b) != "050211f3452d230001aa" {
		t.Errorf("MarshalBinary = %x, %v", b, err)
	}
	if HashAlgo(200).String() != "hash_algo(200)" || HashAlgo(7).String() != "sha224" {
		t.Error("HashAlgo names")
	}
}
