package rpmrepo

import (
	"context"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// BenchmarkHeaderOnly walks the 200-package fixture repository by headers
// (no cache, no filelists-ext) from a local directory and from a loopback
// HTTP server (Range requests) in the same run, and reports both rates
// and their ratio (targets: >= 2000 local pkg/s, local/http <= 1.5).
func BenchmarkHeaderOnly(b *testing.B) {
	dir := mkRepo(b, "many")
	srv := serve(b, dir)
	ctx := context.Background()
	run := func(loc string) (int, time.Duration) {
		start := time.Now()
		r, err := Open(ctx, loc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Walk(ctx, func(digests.Digest) error { return nil }); err != nil {
			b.Fatal(err)
		}
		if r.Stats().Fetched != 200 {
			b.Fatalf("fetched %d", r.Stats().Fetched)
		}
		return r.Stats().Fetched, time.Since(start)
	}
	var nl, nh int
	var tl, th time.Duration
	for b.Loop() {
		n, d := run(dir)
		nl, tl = nl+n, tl+d
		n, d = run(srv.URL)
		nh, th = nh+n, th+d
	}
	local := float64(nl) / tl.Seconds()
	remote := float64(nh) / th.Seconds()
	b.ReportMetric(local, "local-pkg/s")
	b.ReportMetric(remote, "http-pkg/s")
	b.ReportMetric(local/remote, "http-time/local-time")
}

// BenchmarkFastPath reads the 200-package filelists-ext fixture over
// loopback HTTP: no package is touched.
func BenchmarkFastPath(b *testing.B) {
	dir := mkRepo(b, "many-ext")
	srv := serve(b, dir)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		r, err := Open(ctx, srv.URL, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Walk(ctx, func(digests.Digest) error { return nil }); err != nil {
			b.Fatal(err)
		}
		n += r.Stats().Packages
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkg/s")
}
