# hearth — see README.md. Targets:
#   make build    bin/hearth and bin/hearth-agent (static)
#   make test     unit + real-VM integration tests (builds the guest image once, cached)
#   make check    go vet, gofmt and staticcheck
#   make bench    benchmarks (real VMs)
#   make reliability  the reliability gate, full size (load, kill -9 faults, hostile
#                 input, network boundary); report in reliability-report/. The short
#                 version runs inside `make test`. RELIABILITY=short for the short one.
#   make install  bin/hearth to $(DESTDIR)$(PREFIX)/bin, the guest agent to
#                 $(DESTDIR)$(PREFIX)/libexec/hearth (where hearth looks for it)
#   make dist     release artifacts in dist/: tarball, .deb, Python sdist and
#                 wheel, SHA256SUMS; reproducible (scripts/dist.sh)
#   make dist-repro  build dist twice and compare the bytes (scripts/dist-repro.sh)
#   make dist-check  install dist/ into a fresh Debian root (.deb via apt, wheel
#                 in a venv) and run the CLI and Python smoke there (root;
#                 reuses the test image; scripts/dist-check.sh)
GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/hearthvm/hearth/internal/agent.Version=$(VERSION) \
	-X github.com/hearthvm/hearth/internal/version.Version=$(VERSION) \
	-X github.com/hearthvm/hearth/internal/version.Commit=$(COMMIT)
PREFIX    ?= /usr/local
TEST_HOME ?= $(CURDIR)/.cache/hearth-test
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test unit check bench clean image install uninstall dist dist-repro dist-check reliability

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o bin/hearth-agent ./cmd/hearth-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hearth ./cmd/hearth

# hearth finds its guest agent next to itself or in ../libexec/hearth/
# (internal/initrd.FindAgent); the agent is not a command for people, so it
# goes to libexec. Images and workspaces live under $HEARTH_HOME, not here.
install: build
	install -d '$(DESTDIR)$(PREFIX)/bin' '$(DESTDIR)$(PREFIX)/libexec/hearth'
	install -m 0755 bin/hearth '$(DESTDIR)$(PREFIX)/bin/hearth'
	install -m 0755 bin/hearth-agent '$(DESTDIR)$(PREFIX)/libexec/hearth/hearth-agent'

uninstall:
	rm -f '$(DESTDIR)$(PREFIX)/bin/hearth' '$(DESTDIR)$(PREFIX)/libexec/hearth/hearth-agent'
	-rmdir '$(DESTDIR)$(PREFIX)/libexec/hearth'

# The guest image for tests, built once into TEST_HOME and reused.
image: build
	HEARTH_HOME=$(TEST_HOME) bin/hearth image build debian-12

unit:
	$(GO) test -short ./...

test: image
	HEARTH_TEST_HOME=$(TEST_HOME) HEARTH_BIN=$(CURDIR)/bin/hearth HEARTH_AGENT=$(CURDIR)/bin/hearth-agent \
		$(GO) test -timeout 40m -p 1 ./...

check:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | grep -v '^\.cache/')" || { gofmt -l . ; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) run $(STATICCHECK) ./...

bench: image
	HEARTH_TEST_HOME=$(TEST_HOME) HEARTH_BIN=$(CURDIR)/bin/hearth HEARTH_AGENT=$(CURDIR)/bin/hearth-agent \
		$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/

# Release artifacts (docs/install.md). SOURCE_DATE_EPOCH defaults to the
# commit's time, so the same commit gives the same bytes.
dist:
	GO=$(GO) scripts/dist.sh dist

dist-repro:
	GO=$(GO) scripts/dist-repro.sh

# Installs dist/ as a user would, in a fresh debootstrapped root, with the
# image `make image` built into TEST_HOME copied in (no second kernel build;
# built here first only when TEST_HOME has none).
dist-check:
	@test -d '$(TEST_HOME)/images/debian-12' || $(MAKE) image
	DIST=dist TEST_HOME=$(TEST_HOME) scripts/dist-check.sh

# The reliability gate (test/reliability; knobs in docs/reliability.md).
RELIABILITY ?= full
reliability: image
	HEARTH_RELIABILITY=$(RELIABILITY) HEARTH_TEST_HOME=$(TEST_HOME) HEARTH_BIN=$(CURDIR)/bin/hearth HEARTH_AGENT=$(CURDIR)/bin/hearth-agent \
		$(GO) test -count=1 -v -run '^TestReliability$$' -timeout 6h ./test/reliability/

clean:
	rm -rf bin dist
