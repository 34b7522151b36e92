# Everyday commands. `make test` is the test command CI runs.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test lint fmt run sandbox fuzz

test:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# run starts the ATODENE sandbox with its demo shop.
run: sandbox
sandbox:
	$(GO) run ./cmd/atodene-sandbox

# fuzz runs each fuzz target briefly (FUZZTIME=10s by default).
FUZZTIME ?= 10s
fuzz:
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzBuildDetails$$' -fuzztime $(FUZZTIME)
