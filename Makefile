# Everyday commands. `make test` is the test command CI runs.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test test-cluster lint fmt run sandbox demo fuzz

test:
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -tags noembedded -run NoEmbedded ./cmd/worker
	$(MAKE) test-cluster

# test-cluster runs the tests of the order state and of what reads and writes it again, on a Redis
# Cluster of their own (3 masters, 3 replicas, from redis-server on free ports).
CLUSTER_TESTS ?= ./internal/orderstate ./internal/handlers ./internal/worker ./internal/publisher
test-cluster:
	$(GO) run ./internal/tools/rediscluster $(GO) test -race -count=1 $(CLUSTER_TESTS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags noembedded ./cmd/worker
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# run starts the whole product in one process: embedded NATS, Redis-protocol server and sandbox.
run:
	$(GO) run ./cmd/worker -embedded

# demo runs the product embedded, publishes a batch that meets every sandbox rule, prints the outcomes.
demo:
	$(GO) run ./cmd/worker -embedded -demo -log-level warn

# sandbox starts the ATODENE sandbox alone, with its demo shop.
sandbox:
	$(GO) run ./cmd/atodene-sandbox

# fuzz runs each fuzz target briefly (FUZZTIME executions each). A count, not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a target at the deadline with "context deadline
# exceeded" having found nothing (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
fuzz:
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzBuildDetails$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzAppendEscaped$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/atodene -run '^$$' -fuzz '^FuzzFieldPatterns$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/fees -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/events -run '^$$' -fuzz '^FuzzDecodeOrder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/events -run '^$$' -fuzz '^FuzzTraceContext$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/normalize -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/termtable -run '^$$' -fuzz '^FuzzVisible$$' -fuzztime $(FUZZTIME)

# bench runs the full benchmark (docs/benchmarks.md) and writes its JSON to BENCH_JSON;
# bench-quick runs small sizes in under two minutes.
.PHONY: bench bench-quick
BENCH_JSON ?= /tmp/atodene-bench.json
bench:
	$(GO) run ./cmd/bench -json $(BENCH_JSON)

bench-quick:
	$(GO) run ./cmd/bench -quick

# reliability runs the reliability suite at full size (docs/reliability.md); reliability-quick runs
# every scenario at a reduced size in under five minutes, as CI does.
.PHONY: reliability reliability-quick
reliability:
	$(GO) run ./cmd/reliability

reliability-quick:
	$(GO) run ./cmd/reliability -quick
