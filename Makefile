# capdissect: set up, check, demo and measure.  `make demo` and `make test` work on a
# fresh machine: they create .venv themselves; `make test` also installs tcpdump and
# tshark with apt-get when they are missing and we are root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The stamp is rebuilt (pip runs again) when pyproject.toml, setup.py or a module that
# setup.py compiles with mypyc changes, so the compiled copy never lags its source.
STAMP  := $(VENV)/.installed
COMPILED := $(shell $(PYTHON) setup.py --hot)
BENCH_ARGS ?=
RESOURCES_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install tools node-tools test test-fast lint demo bench bench-live verify-tracker clean distclean

install: $(STAMP)

# pip is quiet, so each step says what it does first: the compile alone takes minutes
# on a fresh machine, and a silent terminal looks hung.
$(STAMP): pyproject.toml setup.py $(COMPILED)
	@test -x $(BIN)/python || { echo "==> creating the virtual environment $(VENV)"; \
	  $(PYTHON) -m venv $(VENV); }
	@if [ -n "$$CAPDISSECT_PURE" ]; then \
	  echo "==> installing capdissect and its dependencies into $(VENV) (CAPDISSECT_PURE: nothing compiled)"; \
	else \
	  echo "==> installing capdissect and its dependencies into $(VENV), and compiling its"; \
	  echo "    per-packet modules with mypyc: a few minutes the first time, quick afterwards"; \
	  echo "    (CAPDISSECT_PURE=1 make ... skips compiling: same output, slower)"; \
	fi
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)
	@echo "==> installed: $(BIN)/capdissect"

# tcpdump is the reference the conformance tests compare with; tshark is the second capture
# backend; ip (iproute2) and nft (nftables) make the network namespace of the simultaneous
# open/close scenarios; chromium and pdftoppm (poppler-utils) render and check the handouts;
# strace runs the programs `capdissect trace` follows.
# Installed only if missing, only as root, without questions (the
# debconf answer keeps dumpcap non-setuid, Debian's default).  sbin is searched too: a
# user's PATH may lack it, where ip and nft live.
TOOL_PACKAGES := tcpdump tshark nftables iproute2 chromium poppler-utils strace
tools:
	@missing=; for t in tcpdump tshark nft ip chromium pdftoppm strace; do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; \
	done; \
	if [ -z "$$missing" ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "missing:$$missing; installing $(TOOL_PACKAGES) with apt-get"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" \
	    | debconf-set-selections 2>/dev/null || true; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(TOOL_PACKAGES) \
	    || { apt-get update -q && apt-get install -y -q --no-install-recommends $(TOOL_PACKAGES); }; \
	else \
	  echo "warning:$$missing missing and not root: tests that need them are skipped" >&2; \
	fi
	@$(MAKE) --no-print-directory node-tools

# From npm (tests/node/package-lock.json): mermaid-cli renders every Mermaid diagram we
# write, driven by Debian's Chromium (PUPPETEER_SKIP_DOWNLOAD: no browser download), and
# gift-pegjs parses the GIFT quizzes with Moodle's grammar.  nodejs and npm come from
# Debian when missing.
NODE_STAMP := tests/node/node_modules/.installed
node-tools: $(NODE_STAMP)

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; \
	  else echo "warning: npm missing: the Mermaid and GIFT tests are skipped" >&2; exit 0; fi; \
	fi; \
	cd tests/node && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error \
	  && touch node_modules/.installed

lint: install
	$(BIN)/ruff check capdissect tests benchmarks captures fuzz
	$(BIN)/mypy

test: install tools lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The pure tests only: tests/unit (bytes and records) and the Hypothesis properties, no
# process started, no tool, no root; under a minute (README, "Tests").
FAST_MARKERS := not (live or root or tcpdump or tshark or chromium or slow)
test-fast: install
	$(BIN)/pytest tests/unit tests/properties -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

# The TCP lesson with real sockets (root), or the bundled capture replayed (not root).
demo: install
	@echo "==> running the TCP lesson: capdissect demo tcp-basic"
	$(BIN)/capdissect demo tcp-basic

# Generates (once, cached in ~/.cache/capdissect-bench/) two captures of real traffic (the
# short and long mixes of benchmarks/gen_capture.py) and rewrites benchmarks/RESULTS.md
# against tcpdump, tshark and tcptrace (installed from apt if missing, as root), then a
# million-flow SYN flood (SYNFLOOD.md), then live capture (benchmarks/LIVE.md); then `export` (packets/s, -j 2 against -j 1, Parquet bytes
# a packet: the Export section of RESULTS.md); then the resource cases of issue 21 (a
# 1.5M-packet connection, a 1M SYN flood, a 5,000-SYN handout, 1M blocks before the IDB:
# each command's peak memory, benchmarks/RESOURCES.md).
# Needs root and tcpdump (the capture, and live).
bench: install tools
	@command -v tcptrace >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tcptrace
	$(BIN)/python benchmarks/bench.py --write $(BENCH_ARGS)
	$(BIN)/python benchmarks/stages.py --write
	$(BIN)/python benchmarks/synflood.py --write
	$(BIN)/python benchmarks/resources.py --write $(RESOURCES_ARGS)
	$(BIN)/python benchmarks/live_bench.py --write $(LIVE_BENCH_ARGS)
	$(BIN)/python benchmarks/export_bench.py --write
	$(BIN)/python benchmarks/redesign_bench.py --write

# The tracker against tshark (analysis flags, conversations) on tests/corpus and
# tests/corpus-extra, and, as root, against `ss -tan` on lossy transfers (tc netem, else
# the relay of tests/support/relay.py) between namespaces it creates and deletes; rewrites
# benchmarks/TRACKER.md.  Fetches nothing.
verify-tracker: install tools
	$(BIN)/python benchmarks/verify_tracker.py --write

# Only the live row of SPEC 5: `capdissect live` at 20,000 packets/s for 10 s beside tcpdump,
# both backends, plus scapy's own sniff() and higher rates for comparison; rewrites
# benchmarks/LIVE.md.  Root.
LIVE_BENCH_ARGS ?= --scapy-sniff 2000 --scapy-sniff 10000 --headroom 40000 --headroom 60000
bench-live: install
	$(BIN)/python benchmarks/live_bench.py --write $(LIVE_BENCH_ARGS)

# First the campaign of structure-aware mutants through every command under time and
# memory caps, compared with tcpdump (fuzz/campaign.py; `make test` runs seed 21's first
# 2,000): FUZZ_MUTANTS of them from a new seed each run (FUZZ_SEED=N repeats one); failing
# mutants are kept in fuzz-failures/.  Then coverage-guided fuzzing (atheris, the `fuzz`
# extra) of the capture readers, dissectors, tcpdump printer and tracker, seeded from
# tests/corpus; time-boxed.  Prints executions and crashes and fails on a crash.  FUZZ_DIR
# keeps the learned corpus between runs.
FUZZ_MUTANTS ?= 20000
FUZZ_SEED ?= $(shell date +%s)
# Kinds of failure (COMMAND:KIND) printed but not failing the run, for a known defect
# while it is being fixed; none now.
FUZZ_IGNORE ?=
FUZZ_SECONDS ?= 60
FUZZ_DIR ?=
.PHONY: fuzz
fuzz: install
	$(BIN)/python -m fuzz.campaign --mutants $(FUZZ_MUTANTS) --seed $(FUZZ_SEED) \
	  --keep fuzz-failures $(addprefix --ignore ,$(FUZZ_IGNORE))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[fuzz]' \
	  || echo "warning: atheris did not install; falling back to long Hypothesis runs" >&2
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) $(if $(FUZZ_DIR),--dir $(FUZZ_DIR))

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info $(STAMP)
	find capdissect -name '*.so' -delete
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
