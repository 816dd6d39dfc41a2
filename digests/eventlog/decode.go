package eventlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/zest-attest/zest/digests"
)

// Decoder limits, checked before any allocation.
const (
	maxVariableName = 4096    // UTF-16 characters
	maxSignatures   = 1 << 16 // EFI_SIGNATURE_DATA entries per variable
)

var errShort = errors.New("event data too short")

// GUID is an EFI_GUID as stored on the wire (Data1-3 little-endian).
type GUID [16]byte

// String formats the GUID in the registry form, e.g.
// 8be4df61-93ca-11d2-aa0d-00e098032b8c.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// Well-known GUIDs.
var (
	GlobalVariableGUID   = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c") // EFI_GLOBAL_VARIABLE
	ImageSecurityDBGUID  = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f") // db, dbx
	ShimLockGUID         = mustGUID("605dab50-e046-4300-abb6-3dd810dd8b23")
	CertX509GUID         = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072") // EFI_CERT_X509_GUID
	CertSHA256GUID       = mustGUID("c1c41626-504c-4092-aca9-41f936934328") // EFI_CERT_SHA256_GUID
	errGUIDSyntax        = errors.New("GUID must look like 8be4df61-93ca-11d2-aa0d-00e098032b8c")
	hcrtmData            = []byte("HCRTM")
	separatorErrorData   = []byte{1, 0, 0, 0}
	separatorNormalData  = []byte{0, 0, 0, 0}
	separatorAltNormData = []byte{0xff, 0xff, 0xff, 0xff}
)

// ParseGUID parses the registry form of a GUID.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, errGUIDSyntax
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, errGUIDSyntax
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// decodeError names the event a decoder failed on.
func decodeError(e *Event, what string, err error) error {
	return fmt.Errorf("eventlog: event %d at offset %d (%s): %s: %w", e.Index, e.Offset, e.Type, what, err)
}

func wantType(e *Event, what string, types ...EventType) error {
	for _, t := range types {
		if e.Type == t {
			return nil
		}
	}
	return decodeError(e, what, fmt.Errorf("wrong event type, want one of %v", types))
}

// utf16String decodes little-endian UTF-16, stopping at the first NUL.
func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// looksUTF16 reports whether b is plausibly UTF-16LE text (even length, a
// zero high byte in the first character).
func looksUTF16(b []byte) bool {
	return len(b) >= 2 && len(b)%2 == 0 && b[1] == 0 && b[0] != 0
}

// text decodes event data that firmware writes as either ASCII/UTF-8 or
// UTF-16LE, dropping trailing NULs.
func text(b []byte) string {
	if looksUTF16(b) {
		return utf16String(b)
	}
	return string(bytes.TrimRight(b, "\x00"))
}

// CRTMVersion decodes an EV_S_CRTM_VERSION event: usually a NUL-terminated
// UTF-16LE string, sometimes ASCII, sometimes a GUID or raw bytes (OVMF logs
// "0000"); the raw bytes stay in Event.Data.
func CRTMVersion(e *Event) (string, error) {
	if err := wantType(e, "S-CRTM version", EV_S_CRTM_VERSION); err != nil {
		return "", err
	}
	return text(e.Data), nil
}

// FirmwareBlob is UEFI_PLATFORM_FIRMWARE_BLOB or, with a description,
// UEFI_PLATFORM_FIRMWARE_BLOB2.
type FirmwareBlob struct {
	Description string // BLOB2 only
	Base        uint64
	Length      uint64
}

// ParseFirmwareBlob decodes EV_EFI_PLATFORM_FIRMWARE_BLOB(2) data.
func ParseFirmwareBlob(e *Event) (FirmwareBlob, error) {
	var fb FirmwareBlob
	if err := wantType(e, "firmware blob", EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_EFI_PLATFORM_FIRMWARE_BLOB2); err != nil {
		return fb, err
	}
	d := e.Data
	if e.Type == EV_EFI_PLATFORM_FIRMWARE_BLOB2 {
		if len(d) < 1 || len(d) < 1+int(d[0]) {
			return fb, decodeError(e, "firmware blob description", errShort)
		}
		fb.Description = string(d[1 : 1+int(d[0])])
		d = d[1+int(d[0]):]
	}
	if len(d) != 16 {
		return fb, decodeError(e, "firmware blob", fmt.Errorf("base+length is %d bytes, want 16", len(d)))
	}
	fb.Base = binary.LittleEndian.Uint64(d)
	fb.Length = binary.LittleEndian.Uint64(d[8:])
	return fb, nil
}

// Variable is UEFI_VARIABLE_DATA.
type Variable struct {
	VendorGUID GUID
	Name       string
	Data       []byte
}

// ParseVariable decodes the data of EV_EFI_VARIABLE_DRIVER_CONFIG,
// _BOOT, _BOOT2 and _AUTHORITY events. The declared lengths must account
// for every byte of the event.
func ParseVariable(e *Event) (Variable, error) {
	var v Variable
	if err := wantType(e, "UEFI variable", EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT,
		EV_EFI_VARIABLE_BOOT2, EV_EFI_VARIABLE_AUTHORITY, EV_EFI_SPDM_DEVICE_POLICY); err != nil {
		return v, err
	}
	d := e.Data
	if len(d) < 32 {
		return v, decodeError(e, "UEFI_VARIABLE_DATA", errShort)
	}
	copy(v.VendorGUID[:], d)
	nameLen := binary.LittleEndian.Uint64(d[16:])
	dataLen := binary.LittleEndian.Uint64(d[24:])
	if nameLen > maxVariableName {
		return v, decodeError(e, "UnicodeNameLength", fmt.Errorf("%d characters exceeds %d", nameLen, maxVariableName))
	}
	rest := uint64(len(d) - 32)
	if 2*nameLen > rest || dataLen != rest-2*nameLen {
		return v, decodeError(e, "UEFI_VARIABLE_DATA", fmt.Errorf("name %d chars + data %d bytes do not fill the %d bytes after the header", nameLen, dataLen, rest))
	}
	name := d[32 : 32+2*nameLen]
	v.Name = utf16String(name)
	v.Data = d[32+2*nameLen:]
	return v, nil
}

// Signature is one EFI_SIGNATURE_DATA with the type of its EFI_SIGNATURE_LIST.
type Signature struct {
	Type  GUID // e.g. CertX509GUID, CertSHA256GUID
	Owner GUID
	Data  []byte // DER certificate, hash, ...
}

// ParseSignatureLists decodes the value of PK, KEK, db or dbx: a sequence of
// EFI_SIGNATURE_LIST, flattened into (type, owner, data) triples.
func ParseSignatureLists(b []byte) ([]Signature, error) {
	var out []Signature
	for off := 0; off < len(b); {
		if len(b)-off < 28 {
			return nil, fmt.Errorf("eventlog: signature list at offset %d: %d bytes, header needs 28", off, len(b)-off)
		}
		var typ GUID
		copy(typ[:], b[off:])
		listSize := uint64(binary.LittleEndian.Uint32(b[off+16:]))
		hdrSize := uint64(binary.LittleEndian.Uint32(b[off+20:]))
		sigSize := uint64(binary.LittleEndian.Uint32(b[off+24:]))
		switch {
		case listSize > uint64(len(b)-off):
			return nil, fmt.Errorf("eventlog: signature list at offset %d: SignatureListSize %d exceeds the %d bytes left", off, listSize, len(b)-off)
		case 28+hdrSize > listSize:
			return nil, fmt.Errorf("eventlog: signature list at offset %d: SignatureHeaderSize %d does not fit in list of %d", off, hdrSize, listSize)
		case sigSize < 16:
			return nil, fmt.Errorf("eventlog: signature list at offset %d: SignatureSize %d is smaller than an owner GUID", off, sigSize)
		case (listSize-28-hdrSize)%sigSize != 0:
			return nil, fmt.Errorf("eventlog: signature list at offset %d: %d bytes of entries are not a multiple of SignatureSize %d", off, listSize-28-hdrSize, sigSize)
		}
		n := (listSize - 28 - hdrSize) / sigSize
		if uint64(len(out))+n > maxSignatures {
			return nil, fmt.Errorf("eventlog: signature list at offset %d: more than %d signatures", off, maxSignatures)
		}
		p := off + 28 + int(hdrSize)
		for range n {
			var s Signature
			s.Type = typ
			copy(s.Owner[:], b[p:])
			s.Data = b[p+16 : p+int(sigSize) : p+int(sigSize)]
			out = append(out, s)
			p += int(sigSize)
		}
		if listSize == 0 {
			return nil, fmt.Errorf("eventlog: signature list at offset %d: SignatureListSize 0", off)
		}
		off += int(listSize)
	}
	return out, nil
}

// DevicePathNode is one EFI_DEVICE_PATH_PROTOCOL node.
type DevicePathNode struct {
	Type    uint8
	SubType uint8
	Data    []byte // after the 4-byte header
}

// String renders File path nodes as their path, PIWG firmware volume and
// file nodes as FvVol(guid)/FvFile(guid), and other nodes as
// Path(type,subtype,hexdata).
func (n DevicePathNode) String() string {
	switch {
	case n.Type == 4 && n.SubType == 4:
		return utf16String(n.Data)
	case n.Type == 4 && n.SubType == 6 && len(n.Data) == 16:
		return "FvFile(" + GUID(n.Data).String() + ")"
	case n.Type == 4 && n.SubType == 7 && len(n.Data) == 16:
		return "FvVol(" + GUID(n.Data).String() + ")"
	}
	return fmt.Sprintf("Path(%d,%d,%x)", n.Type, n.SubType, n.Data)
}

// ImageLoad is UEFI_IMAGE_LOAD_EVENT.
type ImageLoad struct {
	Location        uint64
	Length          uint64
	LinkTimeAddress uint64
	DevicePath      []byte           // raw; empty when shim logged none
	Nodes           []DevicePathNode // decoded up to the end node; nil if DevicePath is malformed
	PathErr         error            // why DevicePath could not be decoded, or nil
}

// Text joins the nodes' String forms with '/'.
func (im ImageLoad) Text() string {
	s := make([]string, len(im.Nodes))
	for i, n := range im.Nodes {
		s[i] = n.String()
	}
	return strings.Join(s, "/")
}

// FilePath returns the concatenated File path nodes (e.g.
// \EFI\redhat\shimx64.efi), or "" when there are none.
func (im ImageLoad) FilePath() string {
	var b strings.Builder
	for _, n := range im.Nodes {
		if n.Type == 4 && n.SubType == 4 {
			b.WriteString(n.String())
		}
	}
	return b.String()
}

// ParseImageLoad decodes EV_EFI_BOOT_SERVICES_APPLICATION, _DRIVER and
// EV_EFI_RUNTIME_SERVICES_DRIVER data. A malformed device path is reported
// in PathErr, not as an error: the image fields are still usable.
func ParseImageLoad(e *Event) (ImageLoad, error) {
	var im ImageLoad
	if err := wantType(e, "image load", EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_BOOT_SERVICES_DRIVER,
		EV_EFI_RUNTIME_SERVICES_DRIVER); err != nil {
		return im, err
	}
	d := e.Data
	if len(d) < 32 {
		return im, decodeError(e, "UEFI_IMAGE_LOAD_EVENT", errShort)
	}
	im.Location = binary.LittleEndian.Uint64(d)
	im.Length = binary.LittleEndian.Uint64(d[8:])
	im.LinkTimeAddress = binary.LittleEndian.Uint64(d[16:])
	pathLen := binary.LittleEndian.Uint64(d[24:])
	if pathLen > uint64(len(d)-32) {
		return im, decodeError(e, "LengthOfDevicePath", fmt.Errorf("%d bytes declared, %d follow", pathLen, len(d)-32))
	}
	im.DevicePath = d[32 : 32+pathLen]
	im.Nodes, im.PathErr = ParseDevicePath(im.DevicePath)
	return im, nil
}

// ParseDevicePath splits an EFI device path into nodes, stopping at the
// end-of-entire-path node (7f ff).
func ParseDevicePath(b []byte) ([]DevicePathNode, error) {
	var nodes []DevicePathNode
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("device path node at offset %d: %d bytes, header needs 4", off, len(b)-off)
		}
		t, st := b[off], b[off+1]
		n := int(binary.LittleEndian.Uint16(b[off+2:]))
		if n < 4 || n > len(b)-off {
			return nil, fmt.Errorf("device path node at offset %d: length %d invalid (%d bytes left)", off, n, len(b)-off)
		}
		if t == 0x7f && st == 0xff {
			return nodes, nil
		}
		nodes = append(nodes, DevicePathNode{Type: t, SubType: st, Data: b[off+4 : off+n : off+n]})
		off += n
	}
	if len(b) == 0 {
		return nil, nil
	}
	return nodes, errors.New("device path has no end node")
}

// IPLString decodes EV_IPL data as text: GRUB's "grub_cmd: ..." /
// "kernel_cmdline: ..." and file names, shim's "MokList", systemd's
// UTF-16 descriptions. Trailing NULs are dropped.
func IPLString(e *Event) (string, error) {
	if err := wantType(e, "IPL string", EV_IPL); err != nil {
		return "", err
	}
	return text(e.Data), nil
}

// ActionString decodes EV_ACTION / EV_EFI_ACTION data (ASCII, no NUL).
func ActionString(e *Event) (string, error) {
	if err := wantType(e, "action", EV_ACTION, EV_EFI_ACTION); err != nil {
		return "", err
	}
	return string(e.Data), nil
}

// SeparatorKind classifies an EV_SEPARATOR event.
type SeparatorKind int

const (
	// SeparatorOther means the data and digest match none of the rules.
	SeparatorOther SeparatorKind = iota
	// SeparatorNormal is data 00000000 with digest H(data).
	SeparatorNormal
	// SeparatorAltNormal is data FFFFFFFF with digest H(data).
	SeparatorAltNormal
	// SeparatorError is digest H(01000000): firmware signalled an error.
	SeparatorError
)

func (k SeparatorKind) String() string {
	names := [...]string{"other", "normal", "normal-ffffffff", "error"}
	if k < 0 || int(k) >= len(names) {
		return fmt.Sprintf("SeparatorKind(%d)", int(k))
	}
	return names[k]
}

// Separator classifies an EV_SEPARATOR event by its data and its digest in
// bank alg.
func Separator(e *Event, alg digests.Algorithm) (SeparatorKind, error) {
	if err := wantType(e, "separator", EV_SEPARATOR); err != nil {
		return SeparatorOther, err
	}
	h, err := alg.New()
	if err != nil {
		return SeparatorOther, decodeError(e, "separator", err)
	}
	d := e.Digest(alg)
	if d == nil {
		return SeparatorOther, decodeError(e, "separator", fmt.Errorf("no %s digest", alg))
	}
	sum := func(b []byte) []byte { h.Reset(); h.Write(b); return h.Sum(nil) }
	switch {
	case bytes.Equal(d, sum(separatorErrorData)):
		return SeparatorError, nil
	case bytes.Equal(e.Data, separatorNormalData) && bytes.Equal(d, sum(e.Data)):
		return SeparatorNormal, nil
	case bytes.Equal(e.Data, separatorAltNormData) && bytes.Equal(d, sum(e.Data)):
		return SeparatorAltNormal, nil
	}
	return SeparatorOther, nil
}

// NoAction is the decoded data of an EV_NO_ACTION event, identified by its
// 16-byte signature.
type NoAction struct {
	Signature       string // e.g. "StartupLocality", "Spec ID Event02", "SP800-155 Event3"
	StartupLocality *uint8 // set for a StartupLocality event
	Data            []byte // the bytes after the signature
}

// ParseNoAction decodes EV_NO_ACTION data. Unknown signatures are returned
// as opaque Data; only a malformed StartupLocality is an error.
func ParseNoAction(e *Event) (NoAction, error) {
	var na NoAction
	if err := wantType(e, "no-action", EV_NO_ACTION); err != nil {
		return na, err
	}
	if len(e.Data) < 16 {
		na.Data = e.Data
		return na, nil
	}
	na.Signature = string(bytes.TrimRight(e.Data[:16], "\x00"))
	na.Data = e.Data[16:]
	if bytes.Equal(e.Data[:16], startupLocalitySig) {
		if len(na.Data) != 1 {
			return na, decodeError(e, "StartupLocality", fmt.Errorf("%d bytes after the signature, want 1", len(na.Data)))
		}
		l := na.Data[0]
		na.StartupLocality = &l
	}
	return na, nil
}

// IsHCRTM reports whether e is a well-formed EV_EFI_HCRTM_EVENT (data "HCRTM").
func IsHCRTM(e *Event) bool {
	return e.Type == EV_EFI_HCRTM_EVENT && bytes.Equal(e.Data, hcrtmData)
}

// DigestMatchesData reports whether e's digest in alg is H(Data), the rule
// for separators, actions, S-CRTM versions and most variable events.
func DigestMatchesData(e *Event, alg digests.Algorithm) bool {
	d := e.Digest(alg)
	h, err := alg.New()
	if d == nil || err != nil {
		return false
	}
	h.Write(e.Data)
	return bytes.Equal(h.Sum(nil), d)
}

// ParseSignatureData splits one EFI_SIGNATURE_DATA (owner GUID + data), the
// value EV_EFI_VARIABLE_AUTHORITY events record for the db/vendor_db entry
// that verified an image. Shim's "Shim" and "SbatLevel" authorities carry
// raw data instead; callers decide by variable name.
func ParseSignatureData(b []byte) (owner GUID, data []byte, err error) {
	if len(b) < 16 {
		return owner, nil, fmt.Errorf("eventlog: signature data: %d bytes, owner GUID needs 16", len(b))
	}
	copy(owner[:], b)
	return owner, b[16:], nil
}
