# The front door for developers. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: help services generate verify-generate build test lint demo bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

services: ## bring up local MariaDB and PostgreSQL (installs them on a fresh Debian machine)
	bash scripts/services.sh

generate: ## regenerate gen/ from schemas.yaml (and wire_gen.go)
	$(GO) generate ./...

verify-generate: ## fail when committed generated code is stale
	$(GO) generate ./...
	git diff --exit-code -- . || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	test -z "$$(git status --porcelain)" || { git status --porcelain; echo "generation left new or changed files: run 'make generate' and commit"; exit 1; }

build: ## build bin/pipeline
	$(GO) build -o bin/pipeline ./cmd/pipeline

test: services ## run every test against the local servers
	$(GO) test -count=1 -timeout 40m ./...

lint: ## go vet, gofmt and staticcheck (pinned in go.mod's tool directive)
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

demo: services ## seed a demo OpenDental database and run the pipeline on it (again: an incremental day)
	bash scripts/demo.sh

bench: services ## benchmark suite against the stock tools; writes bench/RESULTS.md
	bash bench/run.sh

clean:
	rm -rf bin
