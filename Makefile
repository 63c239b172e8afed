# Vidda: `make run` starts a demo, `make test` runs every test.
GO      ?= go
BIN     := bin/vidda
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
LINT    := $(GO) tool -modfile=tools/go.mod golangci-lint
# Tests that start servers and browsers run one package pair at a time.
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: all build run test test-short bench bench-ingest bench-search bench-export bench-sfu soak fuzz lint fmt vet tidy-check vuln clean help

all: build

help:
	@echo "make run        build, start a local PostgreSQL under .data/, migrate, seed the demo clinic, serve"
	@echo "make test       every test, against a throwaway PostgreSQL"
	@echo "make faults     fault tests: kill, restart PostgreSQL/Mosquitto, SIGTERM mid-flood (a few minutes)"
	@echo "make deploy-check  check deploy/ (Dockerfile, compose, k8s) against the sources, no Docker needed"
	@echo "make bench      HTTP create/read benchmark against a durable throwaway cluster"
	@echo "make bench-ingest  MQTT device-ingestion benchmark (1,000 homes; embedded broker and Mosquitto)"
	@echo "make bench-search  Observation search benchmark (1M vital signs of 1,000 patients) against hand-written SQL"
	@echo "make bench-export  Bulk Data export of 1M Observations against COPY ... TO STDOUT, with RSS"
	@echo "make bench-sfu  SFU forwarding capacity: concurrent 1:1 visits of pion peers (SFUFLAGS, default 50,100,150 visits)"
	@echo "make fuzz       run each fuzz target for FUZZTIME (default 20s)"
	@echo "make lint       go vet + golangci-lint;  make fmt: gofumpt/goimports"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vidda

run: build
	@DEMO_HOMES="$(DEMO_HOMES)" DEMO_RATE="$(DEMO_RATE)" deploy/devcluster.sh run

test: build
	deploy/with-testdb.sh $(GO) test $(TESTFLAGS) ./...

# Real vidda processes, mosquitto and PostgreSQL on loopback, broken in the
# middle of a flood (cmd/vidda/faults_test.go); too long for make test.
.PHONY: faults deploy-check
faults: build
	VIDDA_TEST_FAULTS=1 deploy/with-testdb.sh $(GO) test -run Fault -count=1 -v -timeout 10m ./cmd/vidda/

deploy-check:
	deploy/check.sh

test-short:
	deploy/with-testdb.sh $(GO) test -count=1 -short ./...

bench: build
	$(GO) build -o bin/viddabench ./cmd/viddabench
	deploy/with-testdb.sh --durable bin/viddabench http $(BENCHFLAGS)

bench-ingest: build
	$(GO) build -o bin/viddabench ./cmd/viddabench
	deploy/with-testdb.sh --durable bin/viddabench mqtt $(BENCHFLAGS)

bench-search: build
	$(GO) build -o bin/viddabench ./cmd/viddabench
	deploy/with-testdb.sh --durable bin/viddabench search $(BENCHFLAGS)

bench-export: build
	$(GO) build -o bin/viddabench ./cmd/viddabench
	deploy/with-testdb.sh --durable bin/viddabench export $(BENCHFLAGS)

SFUFLAGS ?= --visits 50,100,150
bench-sfu:
	$(GO) build -o bin/viddabench ./cmd/viddabench
	bin/viddabench sfu $(SFUFLAGS)

# A bounded steady run (10 minutes unless SOAKFLAGS says otherwise): RSS,
# goroutines and heap at the start and the end, every reading stored.
soak: build
	$(GO) build -o bin/viddabench ./cmd/viddabench
	deploy/with-testdb.sh --durable bin/viddabench soak $(SOAKFLAGS)

FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

vet:
	$(GO) vet ./...

lint: vet tidy-check
	$(LINT) run ./...

fmt:
	$(LINT) fmt ./...

tidy-check:
	$(GO) mod tidy -diff

# govulncheck reads vuln.go.dev, which the development and CI machines cannot
# reach: run it elsewhere, or point VULNDB at a copy of the database
# (VULNDB=file:///path/to/db, the layout of vuln.go.dev).
GOVULNCHECK ?= golang.org/x/vuln/cmd/govulncheck@v1.9.0
vuln:
	$(GO) run $(GOVULNCHECK) $(if $(VULNDB),-db $(VULNDB)) ./...

clean:
	rm -rf bin
