# pstate — build, run and test. See README.md.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 3s
DATA      ?= ./data
ADDR      ?= 127.0.0.1:7070
LOADTIME  ?= 30s

.PHONY: all build run test test-short fuzz bench bench-quick lint soak clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# run: start the daemon on $(DATA), drive it with a load for $(LOADTIME), print
# the throughput and the status, and leave it serving until Ctrl-C.
run: build
	./scripts/run.sh "$(BIN)" "$(DATA)" "$(ADDR)" "$(LOADTIME)"

# test: vet, the tests under the race detector, then every fuzz target for
# $(FUZZTIME) on its seed corpus.
test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
