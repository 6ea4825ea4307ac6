# caret-otel — build, test and demo entry points.
#   make demo   the whole pipeline on embedded defaults, simulated traffic in, analyst report out
#   make test   lint, type-check, registry check and the whole test suite against real services
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Never put the working directory on sys.path: the source folder `caret_otel/` would
# shadow the installed package (whose sub-packages come from processors/, exporters/, ...).
export PYTHONSAFEPATH := 1

COLLECTOR_VERSION := 0.161.0
BUILDER := build/tools/builder-v$(COLLECTOR_VERSION)
COLLECTOR := build/otelcol-caret
PY_SOURCES := $(shell find caret_otel processors exporters semantic_conventions -name '*.py' -o -name '*.pyx' -o -name '*.pyi' -o -name '*.yaml' -o -name '*.json' -o -name '*.sql' 2>/dev/null)

.PHONY: help demo test install collector services generate check lint typecheck unit integration e2e bench clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: install collector services ## run the whole pipeline on simulated traffic and print the analyst report
	$(BIN)/caret-otel demo

test: install collector services check ## lint, type-check and run every test against real services
	$(BIN)/pytest

# --- Python ---------------------------------------------------------------------------------
$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install it with: apt-get install -y python3.11 python3.11-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Strict editable mode links every source file into build/__editable__*, so edits show at
# once and mypy sees the real package layout; a new file needs `make install` again.
# The exporter's OTLP scanner is a Cython extension: it needs a C compiler and Python's headers.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(PY_SOURCES)
	@command -v cc >/dev/null || { echo "error: a C compiler is needed to build caret_otel.exporters._log_records_scan; install it with: apt-get install -y gcc" >&2; exit 1; }
	@test -f "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" || { echo "error: Python's C headers are missing; install them with: apt-get install -y python3.11-dev" >&2; exit 1; }
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	@touch $@

install: $(VENV)/.installed ## create .venv and install caret-otel with its test extras

# --- Our Collector distribution --------------------------------------------------------------
$(BUILDER):
	@command -v go >/dev/null || { echo "error: Go is needed to build the Collector; install it with: apt-get install -y golang-go" >&2; exit 1; }
	mkdir -p build/tools
	GOBIN=$(CURDIR)/build/tools go install go.opentelemetry.io/collector/cmd/builder@v$(COLLECTOR_VERSION)
	mv build/tools/builder $@

$(COLLECTOR): collector/builder-config.yaml | $(BUILDER)
	cd collector && ../$(BUILDER) --config builder-config.yaml
	cp build/otelcol-caret-src/otelcol-caret $@

collector: $(COLLECTOR) ## build our Collector (rebuilt only when collector/builder-config.yaml changes)

# --- System services the tests and the demo run ---------------------------------------------
services: ## install Prometheus (Debian) if missing; PostgreSQL comes from the pgserver wheel
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null \
	    && { systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || pkill -x prometheus || true; }; \
	  else echo "error: Prometheus is missing; install it with: sudo apt-get install -y prometheus" >&2; exit 1; fi; }
	@prometheus --version 2>&1 | head -n1

# --- Checks ---------------------------------------------------------------------------------
generate: install ## regenerate constants, policy and docs from the semantic-conventions registry
	$(BIN)/caret-otel semconv generate

# cython-lint runs pycodestyle, which it looks for on PATH.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/cython-lint --max-line-length 100 exporters/*.pyx

typecheck: install
	cd tests && ../$(BIN)/mypy --config-file ../pyproject.toml -p caret_otel

check: lint typecheck ## ruff, mypy --strict and the registry check
	$(BIN)/caret-otel semconv check

unit: install ## only the unit tests (fast)
	$(BIN)/pytest tests/unit

bench: install collector services ## rerun every benchmark and rewrite docs/benchmarks.md
	env -u PYTHONSAFEPATH $(BIN)/python bench/run_all.py

clean: ## remove build output, the venv and local stack data
	rm -rf build $(VENV) .caret-otel .pytest_cache .mypy_cache .ruff_cache exporters/*.c exporters/*.so
