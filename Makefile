# weft — build, test and run. `make test` is what CI runs (see .ci/run); `make demo` is the main job.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 2m

.PHONY: all build test lint unit fuzz fuzz-brief bench soak demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/weftd ./cmd/weftctl ./cmd/weft-demo
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/weft
	$(GO) build -o $(BIN)/portmap github.com/containernetworking/plugins/plugins/meta/portmap

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# test = lint + race tests (root-only netns tests run when root) + every fuzz target briefly.
test: lint unit fuzz-brief

fuzz-brief:
	FUZZTIME=10s ./scripts/fuzz.sh

# Longer fuzzing: FUZZTIME per target.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Whole-fabric figures (throughput, convergence, weftd memory/CPU, CNI latency), root, ~15 min:
# a table on stdout and JSON in BENCH_OUT; see docs/benchmarks.md. Package micro-benchmarks:
# go test -run '^$' -bench . ./<package>/
BENCH_OUT ?= /tmp/weft-bench.json
bench: build
	BENCH_OUT=$(BENCH_OUT) ./scripts/bench.sh

soak: build
	WEFT_SOAK=1 $(GO) test -count=1 -timeout 120m -run Soak ./...

demo: build
	./$(BIN)/weft-demo

clean:
	rm -rf $(BIN)
