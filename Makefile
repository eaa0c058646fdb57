# mailchaos — the two commands a user runs are `make run` and `make test`.
# Every target does its own set-up (tools, images); nothing needs a registry.
# The targets pass the checkout's stack paths; bin/mailchaos run from
# elsewhere defaults to the same stacks embedded in it (builtin:reference).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
STACK     ?= fixtures/stacks/reference/stack.yaml
# The images of the stack: its folder's images.yaml (make run STACK=... builds them too).
IMAGES    ?= $(dir $(STACK))images.yaml
DEFECTS   ?= fixtures/stacks/defects
OUT       ?= out
MAILCHAOS := bin/mailchaos

# testcontainers-go must not start its reaper (it would need a registry);
# mailchaos removes what it made by the mailchaos.run label instead.
export TESTCONTAINERS_RYUK_DISABLED := true

# go.mod needs go1.27.3 (the standard library's security fixes). A go command
# whose GOTOOLCHAIN is local refuses the module; with this, it fetches go1.27.3
# from the module proxy (about 76 MB, once) and runs that.
export GOTOOLCHAIN := go1.27.3

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: $(MAILCHAOS)
$(MAILCHAOS):
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o $@ ./scenarios/cmd/mailchaos

.PHONY: tools
tools: ## install host packages the image build needs (debootstrap; root with apt only)
	@if command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "tools: installing debootstrap"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null \
		|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null; }; \
	else echo "tools: debootstrap missing (needed only when no registry answers): apt-get install debootstrap"; fi

.PHONY: images
images: $(MAILCHAOS) ## build the stack's images offline (idempotent: unchanged images are skipped)
	$(MAILCHAOS) images --file $(IMAGES)

# The second stack (Exim + Cyrus IMAP): its own Debian base and images.
EXIM_CYRUS_IMAGES ?= fixtures/stacks/exim-cyrus/images.yaml
.PHONY: images-exim-cyrus
images-exim-cyrus: $(MAILCHAOS) ## build the exim-cyrus stack's images offline (fixtures/stacks/exim-cyrus)
	$(MAILCHAOS) images --file $(EXIM_CYRUS_IMAGES)

RUN_ID ?=
.PHONY: clean
clean: $(MAILCHAOS) ## remove what killed runs left (owner process gone), or one run and its scenarios' stacks: make clean [RUN_ID=<run id>] [FORCE=1]
	$(MAILCHAOS) clean $(if $(RUN_ID),--run $(RUN_ID)) $(if $(FORCE),--force)

# The abort test: ABORT_RUNS smoke runs (steady-state, 15 s of load), each
# stopped at a random moment by SIGINT, SIGTERM, SIGKILL (then clean --run),
# a panic injected by a test hook, a tiny --timeout or the watchdog; each
# must leave nothing on the engine, and every run but the killed ones exit
# 2 with status.json and a readable report. Prints the table and writes it
# to $(OUT)/abort-<seed>/abort-test.md. Needs the images (make images).
ABORT_RUNS ?= 20
ABORT_SEED ?=
.PHONY: abort-test
abort-test: $(MAILCHAOS) ## stop ABORT_RUNS smoke runs at random moments (signals, kill, panic, timeout, watchdog): nothing left, exit 2 with a report
	@seed=$${ABORT_SEED:-$$(date +%s)}; out=$(abspath $(OUT))/abort-$$seed; mkdir -p $$out; \
	MAILCHAOS_ABORT_RUNS=$(ABORT_RUNS) MAILCHAOS_ABORT_SEED=$$seed MAILCHAOS_ABORT_OUT=$$out MAILCHAOS_ABORT_PREFIX=$${ABORT_PREFIX:-abort} \
	MAILCHAOS_BIN=$(CURDIR)/$(MAILCHAOS) $(GO) test -count=1 -timeout 5h -run '^TestAbort$$' -v ./scenarios/cmd/mailchaos/ \
		| grep -vE '^=== RUN'

# The checker on generated histories (history/synth), each judged in a
# child process: wall, CPU and peak RSS per size. Targets on this 2-core
# machine: 1M messages in at most 2 s and 300 MiB, 10M in under 20 s and 2 GiB.
# The 10M history takes about 11 GB of disk while it is judged.
SIZES ?= 100000,1000000,10000000
.PHONY: bench-check
bench-check: ## judge generated histories of 100k, 1M and 10M messages: wall, CPU, peak RSS (SIZES=100000,1000000)
	$(GO) run ./reports/cmd/bench-check -sizes $(SIZES)

.PHONY: bench-faults
bench-faults: images ## median inject/heal latency per fault kind on the reference stack
	$(GO) test -count=1 -timeout 30m -run '^TestFaultLatency$$' -v ./faults/harnessenv/ | grep -E '^(fault_latency|--- |ok|FAIL)'

.PHONY: bench-up
bench-up: images ## time the reference stack: cold_images_s, warm_up_s, teardown_s (MAILCHAOS_BENCH_COLD=0 skips the cold build)
	$(GO) test -count=1 -timeout 40m -run '^TestUpTimes$$' -v ./harness/ \
		| grep -E '^(cold_images_s|warm_up_s|teardown_s|services|--- |ok|FAIL|\s+\S+_test.go)'

.PHONY: tools-report
tools-report: ## install Debian's chromium for the report's headless screenshot test (root with apt only)
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "tools-report: installing chromium"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null \
		|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null; }; \
	else echo "tools-report: chromium missing and not root: the screenshot test will skip (apt-get install chromium)"; fi

RUN ?= $(OUT)/latest
PUBKEY ?=
.PHONY: verify
verify: $(MAILCHAOS) ## re-hash a run folder or bundle against its manifest, and check its signature: make verify [RUN=out/<id>|bundle.tar.gz] [PUBKEY=pub.pem]
	$(MAILCHAOS) verify $(if $(PUBKEY),-pubkey $(PUBKEY)) $(RUN)

# A stack to try by hand: its endpoints, CA file, logins and a swaks and a
# curl command are printed; Ctrl-C (or `bin/mailchaos down --run <id>` from
# another shell) tears it down.
.PHONY: up
up: images ## bring a stack up and hold it until Ctrl-C: endpoints, CA, logins, swaks/curl commands (STACK= RUN_ID= USERS=)
	$(MAILCHAOS) up --stack $(STACK) --out $(OUT) $(if $(RUN_ID),--run-id $(RUN_ID)) $(if $(USERS),--users $(USERS))

.PHONY: doctor
doctor: images ## check that a stack keeps the contract the scenarios rely on, one line per check (STACK=)
	$(MAILCHAOS) doctor --stack $(STACK) --out $(OUT) $(if $(RUN_ID),--run-id $(RUN_ID))

.PHONY: tamper-table
tamper-table: $(MAILCHAOS) ## verify on tampered, re-signed, symlinked and crafted run folders: exit code, first line, peak RSS per case
	MAILCHAOS_BIN=$(abspath $(MAILCHAOS)) $(GO) test -count=1 -timeout 10m -run '^TestTamperTable$$' -v ./scenarios/cmd/mailchaos/ \
		| grep -E '^(\||peak RSS|--- |ok|FAIL)|_test\.go:'

# Scenario runs. bin/mailchaos run exits 0 when every gate passed, 1 when a
# gate failed (the system under test), 2 when the harness failed; make turns
# any failure into its own 2, so CI that tells 1 from 2 calls bin/mailchaos
# run itself or reads out/latest/status.json.
RUN_FLAGS = --stack $(STACK) --out $(OUT) $(if $(DURATION),--duration $(DURATION)) $(if $(RATE),--rate $(RATE)) \
	$(if $(USERS),--users $(USERS)) $(if $(SEED),--seed $(SEED)) $(if $(RUN_ID),--run-id $(RUN_ID)) $(if $(SIGN_KEY),--sign-key $(SIGN_KEY)) \
	$(if $(PARALLEL),--parallel $(PARALLEL))

.PHONY: run
run: images ## the nightly scenarios against the reference stack; report in out/latest/ (LABEL= DURATION= RATE= USERS= SEED= SIGN_KEY=key.pem PARALLEL=2)
	$(MAILCHAOS) run --label '$(or $(LABEL),nightly)' $(RUN_FLAGS)

.PHONY: smoke
smoke: images ## the short smoke scenario (steady-state), with its report in out/latest/
	$(MAILCHAOS) run --label smoke --duration $(or $(DURATION),30s) --steady 5s $(RUN_FLAGS)

# The stack variants with seeded defects (fixtures/stacks/defects) against
# their scenarios, and the clean stack against the same scenarios: proof of
# what the gates catch. Exit 0 when every defect was caught with its
# expected finding and the clean stack raised no alarm.
.PHONY: defects
defects: images ## seeded-defect variants vs the clean stack, table in out/latest-defects/ (VARIANTS=a,b DURATION= RATE= SEED=)
	$(MAILCHAOS) defects --stacks $(DEFECTS) --reference $(STACK) --out $(OUT) $(if $(VARIANTS),--variant $(VARIANTS)) $(if $(DURATION),--duration $(DURATION)) \
		$(if $(RATE),--rate $(RATE)) $(if $(USERS),--users $(USERS)) $(if $(SEED),--seed $(SEED))

.PHONY: rehearse
rehearse: images ## upgrade rehearsal under load: make rehearse FROM=v1 TO=v2 (tags, or service=image,...)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "rehearse: give FROM=... and TO=... (e.g. FROM=v1 TO=v2)"; exit 2; }
	$(MAILCHAOS) run --label upgrade --from '$(FROM)' --to '$(TO)' $(RUN_FLAGS)

.PHONY: docker-check
docker-check:
	@# The Docker suites skip themselves where no engine answers (handy for a
	@# quick `go test`); make test is the gate, so it refuses to run without one.
	@docker info >/dev/null 2>&1 || { echo "make test needs a Docker engine: is the Docker daemon running? (or set DOCKER_HOST)" >&2; exit 2; }

.PHONY: test
test: tools tools-report docker-check images images-exim-cyrus ## the tests: unit, in-process protocol tests, and the Docker suites (smoke)
	$(GO) vet ./...
	@# -p 1: the Docker suites each bring a whole stack up; two at once on a
	@# 2-core machine only makes both slower and flakier.
	$(GO) test -p 1 -count=1 -timeout 45m ./...

# Postfix's smtp-source and smtp-sink, unpacked from Debian's postfix package
# into a cache dir: no mail server is configured on the host.
POSTFIX_CACHE ?= $(CURDIR)/.cache/postfix
BENCH_FLAGS   ?=

.PHONY: bench-loadgen
bench-loadgen: ## our SMTP sender vs Postfix smtp-source against smtp-sink; open-model rate error
	@if [ ! -x $(POSTFIX_CACHE)/usr/sbin/smtp-source ]; then \
		echo "bench-loadgen: fetching smtp-source and smtp-sink (apt-get download postfix)"; \
		mkdir -p $(POSTFIX_CACHE)/deb; \
		(cd $(POSTFIX_CACHE)/deb && apt-get download postfix 2>&1 | grep -v '^W: Download is performed unsandboxed' || true); \
		dpkg-deb -x $$(ls $(POSTFIX_CACHE)/deb/postfix_*.deb | head -1) $(POSTFIX_CACHE); \
	fi
	@if LD_LIBRARY_PATH=$(POSTFIX_CACHE)/usr/lib/postfix ldd $(POSTFIX_CACHE)/usr/sbin/smtp-source $(POSTFIX_CACHE)/usr/sbin/smtp-sink | grep -q 'not found'; then \
		echo "bench-loadgen: installing the libraries postfix links against"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			$$(apt-cache depends postfix | awk '/Depends: lib/ {print $$2}') >/dev/null; \
	fi
	$(GO) run ./loadgen/cmd/bench -postfix $(POSTFIX_CACHE) $(BENCH_FLAGS)

# Fuzzing: every Fuzz target in the tree, one after another, FUZZTIME each
# with one worker (-parallel 1: one core, beside whatever else the machine
# runs). The targets are found with `go test -list '^Fuzz'` per package, so
# a new one is fuzzed with no change here; FUZZ=<regexp> picks targets by
# name, FUZZ_PKGS the packages. Each target's output is kept in
# $(FUZZ_LOG)/<package>.<target>.log, and the table (target, package, time
# fuzzed, execs, result) in $(FUZZ_LOG)/summary.txt. A crash fails the
# target: go test writes the input to the package's testdata/fuzz/<target>/,
# which, once the bug is fixed, is committed as a regression case that every
# go test runs. A new input that widens coverage is minimized for at most
# FUZZ_MINIMIZE (go's default, 60s, spends most of a slow target's time
# there: the verify targets run tens of inputs a second).
FUZZTIME      ?= 10m
FUZZ_MINIMIZE ?= 10s
FUZZ          ?= .
FUZZ_PKGS     ?= ./...
FUZZ_LOG      ?= $(OUT)/fuzz

.PHONY: fuzz
fuzz: ## every Fuzz target in turn for FUZZTIME (default 10m) with one worker; time, execs and result per target; fails on a crash (FUZZTIME=30s FUZZ=<regexp>)
	@mkdir -p $(FUZZ_LOG); sum=$(FUZZ_LOG)/summary.txt; mod=$$($(GO) list -m); n=0; failed=0; \
	row() { printf '%-28s %-24s %8s %12s  %s\n' "$$@"; }; \
	row target package fuzzed execs result | tee $$sum; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(FUZZ_PKGS)); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg 2>&1) || { echo "fuzz: go test -list $$pkg failed:" >&2; echo "$$list" >&2; exit 2; }; \
		for t in $$(grep -E '^Fuzz' <<<"$$list" | grep -E '$(FUZZ)' || true); do \
			n=$$((n+1)); short=$${pkg#$$mod/}; log=$(FUZZ_LOG)/$$(tr / . <<<"$$short").$$t.log; \
			if $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZ_MINIMIZE) -parallel 1 $$pkg >$$log 2>&1; then res=ok; \
			else \
				failed=$$((failed+1)); crash=$$(grep -oE 'testdata/fuzz/[^ ]+' $$log | head -1 || true); \
				res="FAIL: $${crash:+crasher $$short/$$crash, }see $$log"; \
			fi; \
			fuzzed=$$(grep -oE '^fuzz: elapsed: [^,]+' $$log | tail -1 | cut -d' ' -f3 || true); \
			execs=$$(grep -oE 'execs: [0-9]+' $$log | tail -1 | cut -d' ' -f2 || true); \
			row $$t $$short "$${fuzzed:--}" "$${execs:--}" "$$res" | tee -a $$sum; \
		done; \
	done; \
	if [ $$n = 0 ]; then echo "fuzz: no Fuzz target matches FUZZ='$(FUZZ)' in $(FUZZ_PKGS)" >&2; exit 2; fi; \
	if [ $$failed -gt 0 ]; then echo "fuzz: $$failed of $$n targets failed (table: $$sum)" >&2; exit 1; fi; \
	echo "fuzz: $$n targets, $(FUZZTIME) each, no crash (table: $$sum)"

# govulncheck and its vulnerability database, both from the Go module proxy
# (vuln.go.dev is not reachable from every machine): the database is built in
# .cache/vuln from the OSV entries of the golang.org/x/vulndb module, the data
# vuln.go.dev serves, with that module's own indexdb command. VULNDB_VERSION
# pins a snapshot (default: the newest); VULNDB=https://vuln.go.dev asks the
# live database instead. govulncheck gets the go1.27.3 toolchain's own go
# first in PATH: its package loader asks `go list` for the Go version with
# GO111MODULE=off, where GOTOOLCHAIN switches nothing, and would otherwise
# type-check the go1.27 standard library as the machine's older Go.
GOVULNCHECK_VERSION ?= v1.10.0
INDEXDB_VERSION     ?= v0.0.0-20261105234957-e22db6528018
VULNDB_VERSION      ?= latest
VULNDB              ?=
VULN_FLAGS          ?=
VULN_CACHE          ?= $(CURDIR)/.cache/vuln

.PHONY: vuln
vuln: ## govulncheck ./... with tool and database from the Go module proxy (VULNDB_VERSION= VULNDB=https://vuln.go.dev VULN_FLAGS='-show verbose')
	@bin=$(VULN_CACHE)/bin; mkdir -p $$bin; \
	if ! $(GO) version -m $$bin/govulncheck 2>/dev/null | grep -q 'mod.golang.org/x/vuln.$(GOVULNCHECK_VERSION)'; then \
		echo "vuln: installing govulncheck $(GOVULNCHECK_VERSION)"; \
		GOBIN=$$bin $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION); \
	fi; \
	db='$(VULNDB)'; \
	if [ -z "$$db" ]; then \
		info=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION)); \
		ver=$$(sed -n 's/^\t"Version": "\(.*\)",$$/\1/p' <<<"$$info"); \
		dir=$$(sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p' <<<"$$info"); \
		test -n "$$ver" -a -d "$$dir/data/osv" || { echo "vuln: no golang.org/x/vulndb@$(VULNDB_VERSION): $$info" >&2; exit 2; }; \
		db=$(VULN_CACHE)/db/$$ver; \
		if [ ! -f $$db/index/db.json ]; then \
			if ! $(GO) version -m $$bin/indexdb 2>/dev/null | grep -q 'mod.golang.org/x/vulndb.$(INDEXDB_VERSION)'; then \
				echo "vuln: installing indexdb from golang.org/x/vulndb@$(INDEXDB_VERSION) (a few minutes the first time)"; \
				GOBIN=$$bin $(GO) install golang.org/x/vulndb/cmd/indexdb@$(INDEXDB_VERSION); \
			fi; \
			echo "vuln: building the database from golang.org/x/vulndb@$$ver"; \
			rm -rf $(VULN_CACHE)/db; mkdir -p $(VULN_CACHE)/db; \
			$$bin/indexdb -vulns $$dir/data/osv -out $$db.tmp && mv $$db.tmp $$db; \
		fi; \
		db=file://$$db; \
	fi; \
	echo "vuln: database $$db"; \
	PATH="$$($(GO) env GOROOT)/bin:$$PATH" $$bin/govulncheck -db $$db $(VULN_FLAGS) ./...
