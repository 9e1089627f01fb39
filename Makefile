# dmvpnd: run `make help` for the list of targets.
SHELL      := /bin/bash
GO         ?= go
CACHE      := $(CURDIR)/.cache
BIN        := $(CURDIR)/bin
STATICCHECK := $(CACHE)/bin/staticcheck
DEADCODE   := $(CACHE)/bin/deadcode
FUZZTIME   ?= 60s
# make test's pass counts executions (Nx), not seconds: with a duration, Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" when the time runs
# out under load (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
SHORTFUZZ  ?= 50000x
LABTIMEOUT ?= 60m
# The least unit-test coverage of the controller package `make cover` accepts (percent).
COVERMIN   ?= 85
BENCHTIMEOUT ?= 40m
export GOFLAGS := -buildvcs=false
MODULE     := github.com/dmvpnd/dmvpnd
# The version both binaries report: git describe, or "dev" outside git.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X $(MODULE)/cmd/internal/version.version=$(VERSION) -X $(MODULE)/cmd/internal/version.commit=$(COMMIT)
# Static, path-independent binaries: two builds of one commit are byte-identical.
GOBUILDFLAGS := -trimpath

.PHONY: help deps tools build package reproducible test test-unit cover test-lab test-rollout fuzz fuzz-short bench bench-lab lint demo clean

help: ## list targets with one-line help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install Debian packages and the lab kernel (idempotent, seconds on a second run)
	@sh e2e/scripts/deps.sh
	@$(MAKE) --no-print-directory tools

tools: ## install pinned Go tools (staticcheck, deadcode) into .cache/bin
	@test -x $(STATICCHECK) || GOBIN=$(CACHE)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	@test -x $(DEADCODE) || GOBIN=$(CACHE)/bin $(GO) install golang.org/x/tools/cmd/deadcode@v0.52.0

build: ## build dmvpnd and dmvpnctl into bin/ (static, -trimpath, version from git describe)
	CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

package: build ## build the .deb (nfpm) into bin/: binaries, unit, examples, man pages, completions, sysctl
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
	  $(GO) run ./deploy/package -bin $(BIN) -root $(CURDIR) -version $(VERSION) -out $(BIN)/dmvpnd.deb

reproducible: ## build twice (another path, another Go cache) and check the binaries are byte-identical
	@CGO_ENABLED=0 CACHE=$(CACHE) GO=$(GO) GOBUILDFLAGS="$(GOBUILDFLAGS)" LDFLAGS="$(LDFLAGS)" sh deploy/scripts/reproducible.sh

test: deps build test-unit fuzz-short test-lab ## everything: unit tests, a short fuzz pass, the VM lab scenarios

test-unit: ## unit tests under the race detector (no root, no VM; quick loop)
	$(GO) test -race -count=1 ./...

cover: ## unit-test coverage per package; fails if controller/ is below COVERMIN% (85)
	@GO=$(GO) COVERMIN=$(COVERMIN) sh deploy/scripts/cover.sh

test-rollout: deps build ## only issue 16's fleet rollout in the lab (TestAnsibleRollout, also run by test-lab)
	@mkdir -p $(CACHE)
	DMVPND_LAB_TESTS=1 $(GO) test -count=1 -timeout 50m -run '^TestAnsibleRollout$$' -v ./e2e/ 2>&1 | tee $(CACHE)/rollout-last.log; exit $${PIPESTATUS[0]}

test-lab: deps build ## lab scenarios in the VM (or natively on a full kernel); logs under .cache/lab/runs
	@mkdir -p $(CACHE)
	DMVPND_LAB_TESTS=1 $(GO) test -p 1 -count=1 -timeout $(LABTIMEOUT) -v ./e2e/... 2>&1 | tee $(CACHE)/lab-last.log | \
	  grep -E '^\s*(--- |PASS|FAIL|ok |panic)|timing:|_test.go:[0-9]+: ' ; st=$${PIPESTATUS[0]}; \
	  [ $$st = 0 ] || { echo "failure context: the 60 lines before each FAIL in $(CACHE)/lab-last.log (a message's later lines, e.g. a guest console, are filtered above)"; \
	    grep -B 60 -E '^\s*--- FAIL' $(CACHE)/lab-last.log | tail -n 400 | sed 's/^/| /'; }; exit $$st

fuzz: ## run every fuzz target for FUZZTIME (default 60s) each
	@sh e2e/scripts/fuzz.sh $(FUZZTIME)

fuzz-short: ## run every fuzz target for SHORTFUZZ executions (default 50000x; part of make test)
	@sh e2e/scripts/fuzz.sh $(SHORTFUZZ)

bench: ## benchmarks with ns/op, B/op, allocs/op, side by side with peers where available
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./nhrp/... ./controller/... ./routing/... ./kernel/...

bench-lab: deps ## one lab boot: hub under N-spoke registration bursts, dmvpnd vs FRR vs kernel floor (BENCH_QUICK=1, BENCH_OUT=dir)
	@mkdir -p $(CACHE)
	DMVPND_LAB_TESTS=1 DMVPND_BENCH_LAB=1 DMVPND_BENCH_QUICK=$(BENCH_QUICK) DMVPND_BENCH_OUT=$(if $(BENCH_OUT),$(abspath $(BENCH_OUT))) \
	  $(GO) test -count=1 -timeout $(BENCHTIMEOUT) -run '^TestBenchLab$$' -v ./e2e/ 2>&1 | tee $(CACHE)/bench-lab-last.log; exit $${PIPESTATUS[0]}

lint: tools ## gofmt, go vet, staticcheck, deadcode (deploy/scripts/deadcode.allow), go mod tidy check, ansible-lint (production) and yamllint on deploy/ansible
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	DEADCODE=$(DEADCODE) sh deploy/scripts/deadcode.sh
	@cp go.mod $(CACHE)/go.mod.bak; cp go.sum $(CACHE)/go.sum.bak; $(GO) mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum"; git diff --stat -- go.mod go.sum; exit 1; fi
	cd deploy/ansible && yamllint --strict .
	cd deploy/ansible && ANSIBLE_ROLES_PATH=roles ansible-lint --nocolor --profile production

demo: deps build ## boot the lab: hub + 2 spokes (IPsec, BGP, Phase 3), ping, show the shortcut forming
	DMVPND_LAB_TESTS=1 DMVPND_DEMO=1 $(GO) test -count=1 -timeout 15m -run '^TestDemo$$' -v ./e2e/

clean: ## remove build outputs (keeps the kernel/package cache)
	rm -rf $(BIN) $(CACHE)/lab
