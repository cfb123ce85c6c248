# azl-vmtest: see README.md.
#   make check  - install missing host tools, build or reuse the stand-in images, run every suite
#   make test   - the project's own tests: vet, unit tests, harness self-tests, then the suites
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH 2>/dev/null)/bin
GOTESTSUM := $(GOBIN)/gotestsum
ARCHES ?= x86_64,aarch64
# Stand-in flavours to build and test: the FIPS one is built for the host's architecture only.
FLAVOURS ?= standard,fips
ARTIFACTS ?= $(CURDIR)/_artifacts
# go test's -timeout for each run of make test/check (a last guard against a hang: the harness's
# own bounds stop a boot, a command or a silent guest long before). make test's runs share the
# host's two cores: with saved states to build (a new machine, a changed input) a self-test
# binary (one package: the bound covers all of it) took 57 minutes here (2026-12-02), so 60
# left no margin; 75 still fits CI's 90 minutes.
SUITES_TIMEOUT ?= 75m
SELFTEST_TIMEOUT ?= 40m
export VMTEST_ARTIFACTS ?= $(ARTIFACTS)

.PHONY: check test setup image vet unit selftest suites vmtests bench record abi-baseline soak clean

check: setup suites

test: setup vet unit vmtests

setup:
	scripts/host-setup.sh

# Builds (or finds in the cache) the stand-in image of every architecture in ARCHES, in every
# flavour in FLAVOURS.
image: setup
	$(GO) run ./cmd/vmtest image build -arch $(ARCHES) -flavour $(FLAVOURS)

vet:
	$(GO) vet ./...

# Unit tests: no VM (suites' check functions run on recorded guest output).
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /suites/ -e /harness/selftest)
	$(GO) test -count=1 -run '^TestUnit' ./suites/...

# Harness self-tests: they boot the stand-in and prove failures are detected. scripts/vmtests.sh
# builds (or finds in the cache) the images each run needs before the run starts, so the host's
# runs need not wait for another architecture's image.
selftest: setup
	GOTESTSUM=$(GOTESTSUM) ARCHES=$(ARCHES) SUITES_TIMEOUT=$(SELFTEST_TIMEOUT) scripts/vmtests.sh selftest

# Every suite on every architecture in ARCHES (VMTEST_IMAGE overrides the stand-in).
suites: setup
	GOTESTSUM=$(GOTESTSUM) ARCHES=$(ARCHES) FLAVOURS=$(FLAVOURS) SUITES_TIMEOUT=$(SUITES_TIMEOUT) scripts/vmtests.sh suites

# make test's VM tests: self-tests and every suite on every architecture, all at once (the
# harness bounds the VMs on the host), with the count of VMs booted and restored at the end.
# Architectures other than the host's run with -short (FOREIGN_SHORT=0 runs them in full, as
# make check does): their long tests judge nothing the architecture changes, and under TCG
# they would push make test past CI's time.
FOREIGN_SHORT ?= 1
vmtests: setup
	GOTESTSUM=$(GOTESTSUM) ARCHES=$(ARCHES) FLAVOURS=$(FLAVOURS) SUITES_TIMEOUT=$(SUITES_TIMEOUT) FOREIGN_SHORT=$(FOREIGN_SHORT) scripts/vmtests.sh selftest suites

# One table (and _artifacts/bench.json) per architecture: boot stages, readiness gap, SSH costs,
# save and restore times, and the last make test's wall time and VM counts; beside the last
# bench's values (or BENCH_BASE's, an earlier bench.json) with each one's change, and the host's
# reference time, which says how much of a change the host made on its own.
bench: image
	VMTEST_BENCH=1 VMTEST_BENCH_BASE=$(if $(BENCH_BASE),$(abspath $(BENCH_BASE))) $(GO) test -count=1 -run '^TestBenchReport$$' -v -timeout 40m ./harness/selftest/

# Runs every suite N times on each architecture in ARCHES and writes _artifacts/soak.md (each
# test's result per run; flaky tests named, never retried).
N ?= 5
soak: image
	N=$(N) SOAK_RESUME=$(SOAK_RESUME) ARCHES=$(ARCHES) SUITES_TIMEOUT=$(SUITES_TIMEOUT) scripts/soak.sh

# Runs $(1) once for each architecture in ARCHES, all at once, with VMTEST_ARCH set; fails if any failed.
define per_arch
	pids=; for a in $$(echo $(ARCHES) | tr , ' '); do \
		VMTEST_ARCH=$$a $(1) & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; exit $$rc
endef

# Records every check table's probe output from a booted image as
# fixtures/<profile>/<probe>/good-<arch>.txt (only where every row reading it passed), for each
# architecture in ARCHES. VMTEST_IMAGE records a real image's answers the same way.
SUITES ?= ./suites/...
record: image
	$(call per_arch,VMTEST_RECORD=$(CURDIR)/fixtures $(GO) test -count=1 -timeout 30m -run '^TestChecks$$' $(SUITES))

# Locks the Tier-1 ABI: writes the exported symbols of the profile's abi_libraries as
# fixtures/<profile>/abi/baseline-<arch>.txt, which the hardening suite's TestABILock compares
# with from then on. Run it only on an image whose ABI is the release's (review the diff).
abi-baseline: image
	$(call per_arch,VMTEST_ABI_BASELINE=$(CURDIR)/fixtures $(GO) test -count=1 -timeout 30m -run '^TestABILock$$' ./suites/hardening/)

clean:
	rm -rf $(ARTIFACTS)
