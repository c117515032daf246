# egress — common tasks. `make test` is what CI and the README run.
GO ?= go
PKGS := ./...

.PHONY: all build test ci vet cross fmt-check generate generate-check bench bench-watch fuzz golden clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/egress ./cmd/egress

# The README's test command: formatting, vet, a cgo-free build, the
# cross-builds, every test.
test: fmt-check vet cross
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 -timeout 30m $(PKGS)

# CI also checks that the committed eBPF objects match the C sources.
ci: generate-check test

vet:
	$(GO) vet $(PKGS)

# replay and rules build (tests included: vet type-checks them) for the
# laptops people read captures on; watch and run say they need Linux there.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) vet $(PKGS)
	GOOS=windows GOARCH=amd64 $(GO) vet $(PKGS)
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/egress
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/egress

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Regenerate the bpf2go output from bpf/*.c (needs clang, llvm, libbpf-dev).
generate:
	$(GO) generate ./bpf/...

generate-check: generate
	git diff --exit-code -- bpf/ capture/ebpf/ internal/enforce/block/ capture/sched/ || { echo "generated eBPF code is stale: run make generate and commit"; exit 1; }

# Throughput and memory of egress replay against tshark (see docs/benchmarks.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./capture/... ./analyze/... ./dnsmsg/... ./appproto/...
	BENCH_TSHARK_FULL=1 bash scripts/bench-replay.sh

# Overhead of egress watch on a connect-heavy loopback load (root; see docs/benchmarks.md).
bench-watch:
	bash scripts/bench-watch.sh

# Short fuzzing of every parser of untrusted input (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Rewrite the golden reports under testdata/golden from the current code.
golden:
	$(GO) test -count=1 ./cmd/egress/cli/ -run TestGolden -update
	$(GO) test -count=1 ./report/ -run TestScenarios -update

clean:
	rm -rf bin
