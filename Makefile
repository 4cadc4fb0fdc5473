# botwatch: `make run` starts the local demo, `make test` runs every test, `make check` the quick tier.
# Both work on a fresh Debian machine as root: they install what they need first.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
APT_PKGS := prometheus prometheus-alertmanager curl docker.io docker-compose busybox-static postgresql iproute2 chromium chromium-driver debootstrap
STATE   ?= var/stack
# Freqtrade pins its own dependencies: it gets a venv of its own, never botwatch's
FT_VENV ?= .venv-freqtrade
FREQTRADE_VERSION := 2026.9

.PHONY: run test check fuzz chaos deps system-deps venv freqtrade generate bench clean

run: deps
	$(BIN)/botwatch up --state-dir $(STATE) --with-freqtrade $(FT_VENV)/bin/freqtrade

# test files run in parallel, each whole in one worker (each test takes free ports and its own folders);
# the tests wait on real services more than they compute, so 3 workers suit a 2-core machine
JOBS    ?= 3
test: deps
	$(BIN)/python -m pytest -q -ra -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

# the quick tier for a developer: unit tests, promtool and amtool, the fuzzers short (no stack, no dockerd)
check: deps
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

# the fuzzers, long and random (`make test` runs them short and fixed); FUZZ_EXAMPLES=N per property (4000)
fuzz: deps
	BOTWATCH_FUZZ=long $(BIN)/python -m pytest -q -ra -m fuzz $(PYTEST_ARGS) tests

# the chaos soak: DURATION of seeded faults against the fast-timings HA stack (six paperbots and a real
# Freqtrade), scored in one JSON line (`make test` runs 2 minutes of it); CHAOS_ARGS="--single --bots 10 --keep"
DURATION ?= 10m
SEED    ?= 1
chaos: deps
	$(BIN)/python -m bench.record chaos.soak --duration $(DURATION) --seed $(SEED) --with-freqtrade $(FT_VENV)/bin/freqtrade $(CHAOS_ARGS)

deps: system-deps venv freqtrade

# Debian's Prometheus 2.42 / Alertmanager 0.25 (promtool, amtool) are what the tests run against;
# docker.io gives the tests a private dockerd, busybox-static the rootfs of their test image.
system-deps:
	@missing=""; \
	for cmd in prometheus promtool amtool prometheus-alertmanager curl dockerd docker-compose busybox ip; do \
	  command -v $$cmd >/dev/null 2>&1 || missing=yes; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=yes; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: need root to apt-get install $(APT_PKGS)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS); \
	fi

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# a real Freqtrade for the tests and `botwatch up --with-freqtrade` (~45 s, ~770 MB)
freqtrade: $(FT_VENV)/.installed

$(FT_VENV)/.installed:
	$(PYTHON) -m venv $(FT_VENV)
	$(FT_VENV)/bin/pip install -q --disable-pip-version-check freqtrade==$(FREQTRADE_VERSION)
	touch $@

bench: deps
	@for b in $(filter-out __init__ record,$(basename $(notdir $(wildcard bench/*.py)))); do $(BIN)/python -m bench.record bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) $(FT_VENV) var .pytest_cache

# the generated files: the rules and Prometheus' configs from botwatch/core/mixin.py, the dashboards' JSON
# from grafana/dashboards
generate: venv
	$(BIN)/python -m botwatch.core.mixin --out prometheus/rules/botwatch.rules.yml
	$(BIN)/python -m botwatch.core.scrape
	$(BIN)/python grafana/generate.py
