# chacc — the two commands that matter: `make run` and `make test`.
export CGO_ENABLED := 0
GO      ?= go
GOFLAGS ?=
# Shipped modules (under modules/) installed by `make run`; override to choose.
SHIPPED := $(foreach m,$(wildcard modules/*/module_meta.json),$(shell grep -o '"name"[[:space:]]*:[[:space:]]*"[^"]*"' $(m) | head -1 | sed 's/.*"\([^"]*\)"$$/\1/'))
CHACC_BOOTSTRAP_MODULES ?= $(subst $(eval) ,$(comma),$(foreach n,$(SHIPPED),dist/modules/$(n)-*.chacc))
comma := ,

.PHONY: all build modules run test test-short fuzz proto vet fmt clean bench

all: build modules

build:
	$(GO) build -o bin/chacc ./cmd/chacc

modules: build
	scripts/build-modules.sh

run: build modules
	CHACC_BOOTSTRAP_MODULES="$(CHACC_BOOTSTRAP_MODULES)" ./bin/chacc serve

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

# The bridge's benchmarks against in-process and microservice baselines
# (BENCHMARKS.md): one table, and bench/results.json. BENCH_QUICK=1 for a
# shorter run; DATABASE_URL adds the Postgres rows.
bench:
	$(GO) run ./bench

fuzz:
	$(GO) test ./core/archive -run '^$$' -fuzz FuzzRead -fuzztime 60s

proto:
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" buf generate

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go' | grep -v '^proto/gen/')

clean:
	rm -rf bin build dist
