# agenthost — build, install and test.
GO ?= go
PKGS ?= ./...
# Where `make install` puts agenthost: $GOBIN if set, else /usr/local/bin when
# it is writable (root on a fresh machine), else $(go env GOPATH)/bin.
INSTALL_DIR ?= $(shell d=$$($(GO) env GOBIN); if [ -n "$$d" ]; then echo "$$d"; elif [ -w /usr/local/bin ]; then echo /usr/local/bin; else echo "$$($(GO) env GOPATH)/bin"; fi)

.PHONY: all build install serve image image-prebuilt test test-short vet fmt bench services clean

all: build

# A static binary (no cgo), so that `agenthost image build` can copy it into
# a runtime image from any directory. The first build compiles everything:
# about 3 minutes on 2 cores.
build:
	@echo "building bin/agenthost (static; the first build takes a few minutes)"
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/agenthost ./cmd/agenthost

install: build
	@mkdir -p "$(INSTALL_DIR)"
	install -m 0755 bin/agenthost "$(INSTALL_DIR)/agenthost"
	@echo "installed $(INSTALL_DIR)/agenthost"
	@case ":$$PATH:" in *":$(INSTALL_DIR):"*) ;; *) echo "note: $(INSTALL_DIR) is not on your PATH; add it: export PATH=\"$(INSTALL_DIR):\$$PATH\"";; esac

# The agenthost image (Dockerfile; see docs/operations.md), compiled in the
# official Go image: needs BuildKit and a registry to pull golang from.
IMAGE ?= agenthost:latest
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
image:
	DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# The same image around bin/agenthost built here: no registry needed.
image-prebuilt: build
	sh deploy/docker/rootfs.sh bin/agenthost dist/rootfs
	DOCKER_BUILDKIT=1 docker build --build-arg ROOTFS=prebuilt -t $(IMAGE) .

# Installs agenthost and hosts the demo agent (offline model, SQLite, no
# keys) on http://localhost:8000.
serve: install
	"$(INSTALL_DIR)/agenthost" serve

# The whole suite, with the services it needs (bubblewrap, PostgreSQL,
# dockerd, Chromium, the reference TypeScript client) installed and started
# first. Under CI=true a missing service is a failure, not a skip.
test:
	@env=$$(./scripts/services.sh) || { echo "services failed (see above)"; exit 1; }; \
	eval "$$env"; \
	$(GO) vet $(PKGS) && \
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Unit tests only, no services.
test-short:
	$(GO) test -race -short $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin dist
