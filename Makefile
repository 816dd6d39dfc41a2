# Every target here is what CI or a developer runs; nothing hidden.
GO ?= go
export CGO_ENABLED ?= 1

.PHONY: test vet build bench soak fuzz demo

# The README's test command. -race needs cgo (gcc); tests that need no race
# detector run in the same invocation.
test: vet
	$(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

build:
	$(GO) build -o zest ./cmd/zest

# Speed targets (see README "Performance"): each benchmark measures its
# baseline (sha256sum, gzip) in the same run and reports the ratio.
# ZEST_BENCH_TREE_MB sizes the rootfs tree (the issue's target is 1-2 GB).
bench:
	ZEST_BENCH_TREE_MB=$${ZEST_BENCH_TREE_MB:-1024} $(GO) test -run='^$$' -bench=. -benchtime=3x ./digests/fstree/
	$(GO) test -run='^$$' -bench=. -benchmem ./digests/imalog/ ./policygen/... ./schema/ ./digests/initrd/ ./digests/rpm/ ./digests/rpmrepo/ ./digests/deb/ ./digests/pe/ ./digests/eventlog/ ./digests/firmware/ ./verifier/keylime/ ./verifier/quote/ ./verifier/mb/ ./verifier/ima/
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=20x ./verifier/server/
	# archive: ingest (SQLite, PostgreSQL at 127.0.0.1:5432) vs a bare INSERT,
	# replay vs a bare scan. The issue's sizes: ZEST_BENCH_ARCHIVE_RECORDS=1000000
	# ZEST_BENCH_ARCHIVE_ROUNDS=100000 with -benchtime=1x.
	$(GO) test -run='^$$' -bench=. -benchtime=3x ./archive/

# Soak tests (not in `make test`): push agents against one push server and
# the pull runner over many agents, several agents per TPM. Size them with
# ZEST_SOAK_AGENTS, ZEST_SOAK_SECONDS (and ZEST_SOAK_SWTPM extra swtpm for
# push); the defaults are a quick run. BenchmarkEvidence (make bench) times
# Keylime's own handler as its baseline when ZEST_KEYLIME_SRC names a
# keylime/keylime checkout.
soak:
	ZEST_SOAK=1 $(GO) test -count=1 -v -timeout=2h -run='Soak' ./verifier/server/ ./verifier/pull/

# Run every fuzz target for FUZZTIME each (seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg || exit 1; \
	  done; \
	done
