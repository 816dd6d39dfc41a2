package rpmrepo

import (
	"crypto/md5" //nolint:gosec // only with Options.AllowMD5
	"hash"
)

func md5New() hash.Hash { return md5.New() } //nolint:gosec
