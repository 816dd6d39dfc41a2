package rpm

import "strconv"

// Tag is a header tag number. Signature-header tags 1000-1008 reuse
// main-header numbers with other meanings, which is why the two headers are
// separate Tags values.
type Tag uint32

// Signature-header tags (include/rpm/rpmtag.h, RPMSIGTAG_*).
const (
	TagSigRegion        Tag = 62  // HEADERSIGNATURES
	TagSigSHA1          Tag = 269 // SHA1HEADER: hex SHA-1 of the main header
	TagSigSHA256        Tag = 273 // SHA256HEADER: hex SHA-256 of the main header
	TagSigFileSigs      Tag = 274 // FILESIGNATURES: hex security.ima per file (rpm >= 4.15)
	TagSigFileSigLength Tag = 275 // FILESIGNATURELENGTH
)

// Main-header tags (include/rpm/rpmtag.h, RPMTAG_*).
const (
	TagMainRegion        Tag = 63 // HEADERIMMUTABLE
	TagName              Tag = 1000
	TagVersion           Tag = 1001
	TagRelease           Tag = 1002
	TagEpoch             Tag = 1003
	TagArch              Tag = 1022
	TagOldFileNames      Tag = 1027
	TagFileSizes         Tag = 1028
	TagFileModes         Tag = 1030
	TagFileDigests       Tag = 1035
	TagFileLinkTos       Tag = 1036
	TagFileFlags         Tag = 1037
	TagSourceRPM         Tag = 1044
	TagFileDevices       Tag = 1095
	TagFileInodes        Tag = 1096
	TagSourcePackage     Tag = 1106
	TagDirIndexes        Tag = 1116
	TagBaseNames         Tag = 1117
	TagDirNames          Tag = 1118
	TagPayloadFormat     Tag = 1124
	TagPayloadCompressor Tag = 1125
	TagLongFileSizes     Tag = 5008
	TagFileDigestAlgo    Tag = 5011
	TagFileSignatures    Tag = 5090 // rpm 4.13/4.14 IMA signatures
	TagFileSigLength     Tag = 5091
	TagPayloadDigest     Tag = 5092
	TagPayloadDigestAlgo Tag = 5093
)

var tagNames = map[Tag]string{
	TagSigRegion: "HEADERSIGNATURES", TagSigSHA1: "SHA1HEADER", TagSigSHA256: "SHA256HEADER",
	TagSigFileSigs: "FILESIGNATURES", TagSigFileSigLength: "FILESIGNATURELENGTH",
	TagMainRegion: "HEADERIMMUTABLE", TagName: "NAME", TagVersion: "VERSION", TagRelease: "RELEASE",
	TagEpoch: "EPOCH", TagArch: "ARCH", TagOldFileNames: "OLDFILENAMES", TagFileSizes: "FILESIZES",
	TagFileModes: "FILEMODES", TagFileDigests: "FILEDIGESTS", TagFileLinkTos: "FILELINKTOS",
	TagFileFlags: "FILEFLAGS", TagSourceRPM: "SOURCERPM", TagFileDevices: "FILEDEVICES",
	TagFileInodes: "FILEINODES", TagSourcePackage: "SOURCEPACKAGE", TagDirIndexes: "DIRINDEXES",
	TagBaseNames: "BASENAMES", TagDirNames: "DIRNAMES", TagPayloadFormat: "PAYLOADFORMAT",
	TagPayloadCompressor: "PAYLOADCOMPRESSOR", TagLongFileSizes: "LONGFILESIZES",
	TagFileDigestAlgo: "FILEDIGESTALGO", TagFileSignatures: "FILESIGNATURES(main)",
	TagFileSigLength: "FILESIGNATURELENGTH(main)", TagPayloadDigest: "PAYLOADDIGEST",
	TagPayloadDigestAlgo: "PAYLOADDIGESTALGO",
}

// String returns "1035 (FILEDIGESTS)" for the tags this package uses and the
// bare number for others. Numbers 1000-1008 are named as main-header tags.
func (t Tag) String() string {
	s := strconv.FormatUint(uint64(t), 10)
	if n, ok := tagNames[t]; ok {
		s += " (" + n + ")"
	}
	return s
}
