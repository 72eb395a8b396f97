# pstate — build, run and test. See README.md.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 3s
DATA      ?= ./data
ADDR      ?= 127.0.0.1:7070
LOADTIME  ?= 30s
BENCHFLAGS ?=
REDIS_INSTALL = command -v redis-server >/dev/null || \
	(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server) || \
	echo "redis-server could not be installed: the benchmarks leave Redis out"

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

# bench: pstate side by side with the baseline engine, SQLite and Redis on
# this machine (at most 10 minutes): the table on stdout, the rows in
# bench/out/results.json. bench-quick runs every scenario small (under a
# minute). Redis is installed from Debian when missing; if that fails the
# harness leaves Redis out and says so. docs/BENCHMARKS.md reads the numbers.
bench: build
	$(REDIS_INSTALL)
	$(GO) run ./bench/cmd/pstatebench -pstated $(BIN)/pstated $(BENCHFLAGS)

bench-quick: build
	$(REDIS_INSTALL)
	$(GO) run ./bench/cmd/pstatebench -quick -pstated $(BIN)/pstated $(BENCHFLAGS)

# soak: the fault suite at full length (every crash point of 40 seeds, 40
# kill -9 rounds, more slow clients and corruptions), then its fuzz targets
# for $(SOAKFUZZ) each; 10 to 30 minutes on 2 cores. The SUMMARY lines are
# the counts docs/RELIABILITY.md quotes; the full log is $(BIN)/soak.log.
SOAKFUZZ ?= 2m
soak: build
	PSTATE_SOAK=1 $(GO) test -race -count=1 -timeout 60m -v ./cmd/internal/faults ./faults \
		> $(BIN)/soak.log 2>&1; status=$$?; \
		grep -E 'SUMMARY|^(--- |ok|FAIL)' $(BIN)/soak.log; exit $$status
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(SOAKFUZZ) ./cmd/internal/faults
	$(GO) test -run '^$$' -fuzz '^FuzzEventInFullBatch$$' -fuzztime $(SOAKFUZZ) ./faults

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
