# azl-vmtest: see README.md.
#   make check  - install missing host tools, build or reuse the stand-in images, run every suite
#   make test   - the project's own tests: vet, unit tests, harness self-tests, then the suites
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH 2>/dev/null)/bin
GOTESTSUM := $(GOBIN)/gotestsum
ARCHES ?= x86_64,aarch64
ARTIFACTS ?= $(CURDIR)/_artifacts
SUITES_TIMEOUT ?= 60m
SELFTEST_TIMEOUT ?= 40m
export VMTEST_ARTIFACTS ?= $(ARTIFACTS)

.PHONY: check test setup image vet unit selftest suites vmtests bench clean

check: setup image suites

test: setup vet unit image vmtests

setup:
	scripts/host-setup.sh

# Builds (or finds in the cache) the stand-in image of every architecture in ARCHES.
image: setup
	$(GO) run ./cmd/vmtest-image build -arch $(ARCHES)

vet:
	$(GO) vet ./...

# Unit tests: no VM (suites' check functions run on recorded guest output).
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /suites/ -e /harness/selftest)
	$(GO) test -count=1 -run '^TestUnit' ./suites/...

# Harness self-tests: they boot the stand-in and prove failures are detected.
selftest: image
	@mkdir -p $(ARTIFACTS)
	$(GOTESTSUM) --junitfile $(ARTIFACTS)/junit-selftest.xml --format testname -- \
		-count=1 -timeout $(SELFTEST_TIMEOUT) ./harness/selftest/

# Every suite against the image (VMTEST_IMAGE, default the host architecture's stand-in).
suites: image
	@mkdir -p $(ARTIFACTS)
	$(GOTESTSUM) --junitfile $(ARTIFACTS)/junit.xml --format testname -- \
		-count=1 -timeout $(SUITES_TIMEOUT) ./suites/...

# make test's VM tests: self-tests and suites in one run, so packages share the CPUs.
vmtests: image
	@mkdir -p $(ARTIFACTS)
	$(GOTESTSUM) --junitfile $(ARTIFACTS)/junit.xml --format testname -- \
		-count=1 -timeout $(SUITES_TIMEOUT) ./harness/selftest/ ./suites/...

# Boot stages, readiness gap and per-command round trip, for comparing changes.
bench: image
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./harness/selftest/

clean:
	rm -rf $(ARTIFACTS)
