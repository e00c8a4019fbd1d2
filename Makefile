# agenthost — build and test.
GO ?= go
PKGS ?= ./...

.PHONY: all build test test-short vet fmt bench services clean

all: build

build:
	$(GO) build -o bin/agenthost ./cmd/agenthost

# The whole suite, with the services it needs (PostgreSQL, dockerd,
# Chromium) installed and started first. Under CI=true a missing service is a
# failure, not a skip.
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
	rm -rf bin
