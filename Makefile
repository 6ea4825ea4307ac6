# caret-otel — build, test and demo entry points.
#   make demo   the whole pipeline on embedded defaults, simulated traffic in, analyst report out
#   make test   lint, type-check, registry check and the whole test suite against real services
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Every distribution of the project, ground floor first (README, "Repository layout").
DISTRIBUTIONS := core semconv processors/privacy sdk exporters/postgres receivers/gateway

COLLECTOR_VERSION := 0.161.0
BUILDER := build/tools/builder-v$(COLLECTOR_VERSION)
COLLECTOR := build/otelcol-caret
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(DISTRIBUTIONS)) exporters/postgres/setup.py
PYX := $(wildcard exporters/postgres/src/caret_otel/exporters/postgres/*.pyx)
# Debian's prometheus package, unpacked into build/ when the machine has none on PATH
# (never installed as a system service, so nothing on the machine is started or stopped).
PROMETHEUS_ROOT := build/prometheus
# Debian's prometheus-alertmanager (alertmanager + amtool), the same way: the machine's, else
# the package unpacked into build/alertmanager (no system service is installed or started).
ALERTMANAGER_ROOT := build/alertmanager

.PHONY: help demo test install pure-python collector services kafka generate check lint typecheck unit bench clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: install collector services ## run the whole pipeline on simulated traffic and print the analyst report
	$(BIN)/caret-otel demo

test: install collector services kafka check ## lint, type-check and run every test against real services
	$(BIN)/pytest

# --- Python ---------------------------------------------------------------------------------
$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install it with: apt-get install -y python3.11 python3.11-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Plain editable installs of every distribution: a new file is seen at once. The
# exporter's OTLP scanner and attribute fast paths are Cython extensions, compiled in
# place when a C compiler and Python's headers are there (pure-Python twins otherwise).
$(VENV)/.installed: $(BIN)/python $(PYPROJECTS) $(PYX)
	@command -v cc >/dev/null || echo "note: no C compiler: the exporter runs its pure-Python fast paths (install gcc and python3.11-dev, then make install, for the compiled ones)" >&2
	$(BIN)/pip install --quiet $(addprefix -e ./,$(DISTRIBUTIONS)) -e '.[test]'
	@touch $@

# The gateway's hot path compiled with mypyc (receivers/gateway/compile_hot_path.py: the
# same .py sources, C extensions placed beside them); rebuilt when any source it was built
# from changes (hot_path.SOURCE_PACKAGES; mypyc also folds the generated semantic
# conventions' constants in).
HOT_PATH_SOURCES := receivers/gateway/compile_hot_path.py \
	$(wildcard core/src/caret_otel/otlp/*.py processors/privacy/src/caret_otel/processors/privacy/*.py \
	receivers/gateway/src/caret_otel/receivers/gateway/*.py semconv/src/caret_otel/semconv/*.py)
HOT_PATH := $(VENV)/.hot-path
$(HOT_PATH): $(VENV)/.installed $(HOT_PATH_SOURCES)
	$(BIN)/python receivers/gateway/compile_hot_path.py
	@touch $@

install: $(VENV)/.installed $(HOT_PATH) ## create .venv, install caret-otel with its test extras, compile the hot path

pure-python: $(VENV)/.installed ## remove the compiled hot path: the gateway runs pure Python until the next make install
	$(BIN)/python receivers/gateway/compile_hot_path.py --remove
	rm -f $(HOT_PATH)

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

# --- Apache Kafka (the two-tier Collector topology; docs/operations.md) -----------------------
# Kafka 4 (KRaft, no ZooKeeper) from Maven Central: kafka/pom.xml names the broker and its
# tools; Maven copies them and their dependencies into build/kafka/ (re-run only when the pom
# changes). Needs Java 17 and Maven.
KAFKA_JARS := build/kafka/.copied
$(KAFKA_JARS): kafka/pom.xml
	@command -v mvn >/dev/null && command -v java >/dev/null || { echo "error: Kafka needs Maven and Java 17; install them with: apt-get install -y maven openjdk-17-jre-headless" >&2; exit 1; }
	rm -rf build/kafka && mkdir -p build/kafka
	cd kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/build/kafka
	@touch $@

kafka: $(KAFKA_JARS) ## Apache Kafka's jars into build/kafka/ (for the two-tier Collector tests and `up --kafka`)

# --- System services the tests and the demo run ---------------------------------------------
services: ## Prometheus, promtool, Alertmanager and amtool: the machine's, or Debian's packages unpacked into build/
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then prometheus --version 2>&1 | head -n1; \
	elif [ -x $(PROMETHEUS_ROOT)/usr/bin/prometheus ]; then $(PROMETHEUS_ROOT)/usr/bin/prometheus --version 2>&1 | head -n1; \
	else \
	  { [ "$$(id -u)" != 0 ] || apt-get update -qq; } && mkdir -p build/debs && (cd build/debs && apt-get download -qq prometheus) \
	    && dpkg-deb -x "$$(ls build/debs/prometheus_*.deb | head -n1)" $(PROMETHEUS_ROOT) \
	    && $(PROMETHEUS_ROOT)/usr/bin/prometheus --version 2>&1 | head -n1 \
	  || { echo "error: Prometheus is missing; install it with: sudo apt-get update && sudo apt-get install -y prometheus" >&2; exit 1; }; \
	fi
	@if { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; } && command -v amtool >/dev/null; then amtool --version 2>&1 | head -n1; \
	elif [ -x $(ALERTMANAGER_ROOT)/usr/bin/prometheus-alertmanager ]; then $(ALERTMANAGER_ROOT)/usr/bin/amtool --version 2>&1 | head -n1; \
	else \
	  { [ "$$(id -u)" != 0 ] || apt-get update -qq; } && mkdir -p build/debs && (cd build/debs && apt-get download -qq prometheus-alertmanager) \
	    && dpkg-deb -x "$$(ls build/debs/prometheus-alertmanager_*.deb | head -n1)" $(ALERTMANAGER_ROOT) \
	    && $(ALERTMANAGER_ROOT)/usr/bin/amtool --version 2>&1 | head -n1 \
	  || { echo "error: Alertmanager is missing; install it with: sudo apt-get update && sudo apt-get install -y prometheus-alertmanager" >&2; exit 1; }; \
	fi

# --- Checks ---------------------------------------------------------------------------------
generate: install ## run every generator: semconv package, docs, Collector privacy pass, dashboards, rules
	$(BIN)/caret-otel generate

# cython-lint runs pycodestyle, which it looks for on PATH.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/cython-lint --max-line-length 100 $(PYX)

typecheck: install
	$(BIN)/mypy $(addsuffix /src,$(DISTRIBUTIONS)) src

check: lint typecheck ## ruff, mypy --strict, the registry check and every generated file fresh
	$(BIN)/caret-otel semconv check
	$(BIN)/caret-otel generate --check

unit: install ## only the unit tests (fast)
	$(BIN)/pytest tests/unit

bench: install collector services ## rerun every benchmark and rewrite docs/benchmarks.md
	$(BIN)/python bench/run_all.py

clean: ## remove build output, the venv and local stack data
	rm -rf build $(VENV) .caret-otel .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.git -prune -o \( -name '*.egg-info' -o -name __pycache__ \) -prune -exec rm -rf {} +
	rm -f $(PYX:.pyx=.c) $(wildcard exporters/postgres/src/caret_otel/exporters/postgres/*.so)
	rm -f $(wildcard core/src/caret_otel/otlp/*.so processors/privacy/src/caret_otel/processors/privacy/*.so \
		receivers/gateway/src/caret_otel/receivers/gateway/*.so receivers/gateway/src/*.so)
