# `make test` works on a bare machine: it makes .venv, installs dex with its
# test dependencies and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

CONFIG ?= configs/local-4.toml
# pytest-xdist processes for `make test`, each taking whole test files (so a
# module's shared cluster starts once). Three on two cores: cluster tests
# spend much of their time waiting on elections and timeouts, and three
# workers kept about 1.7 cores busy where one kept 1.1.
TEST_WORKERS ?= 3

.PHONY: up down status test install engine assets bench clean

# `make up` installs what a node needs; `make test` adds the test tools
# (pytest, Hypothesis, Playwright...), in one pip run on a bare machine.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed engine assets
	@# Byte-compile dex's own modules, as pip does for the packages it installs: a node
	@# or a `dex` command then starts without compiling them (about 0.25 s of CPU each
	@# time where PYTHONDONTWRITEBYTECODE keeps Python from caching them itself).
	@$(PY) -m compileall -q dex cluster

# The compiled engine (setup.py): `pip install -e` builds it; this rebuilds it
# in place when the engine's sources changed since (dex.engine would otherwise
# run the pure engine, saying so). Where it was never built (no C compiler),
# nothing is retried here.
engine: $(VENV)/.installed
	@DEX_PURE_PYTHON=1 $(PY) -c "import sys, dex.engine as e; m, why = e.load_compiled(); sys.exit(m is None and 'older sources' in why)" \
		|| $(PY) setup.py -q build_ext --inplace

# The dashboard's assets (web/ -> dex/api/static/, not committed): npm ci
# installs the pinned lightweight-charts, web/build.mjs copies the page and it.
# Without npm the nodes still run; their / page then says to run `make assets`.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package.json web/package-lock.json

assets: dex/api/static/BUILT

dex/api/static/BUILT: $(WEB_SOURCES)
	@if command -v npm >/dev/null 2>&1; then \
		cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	else \
		echo "assets: *** npm not found: the dashboard is not built (install Node.js and run make assets) ***" >&2; \
	fi

# Start the four-node local cluster in the background (SQLite wherever a
# database is needed, so no server is required) and print where to look.
up: install
	@test -f var/local-4/cluster.secret || $(VENV)/bin/dex cluster init --config $(CONFIG)
	$(VENV)/bin/dex cluster up --detach --config $(CONFIG)
	@echo
	@echo "  status:    $(VENV)/bin/dex cluster status"
	@echo "  dashboard: http://127.0.0.1:8101/"
	@echo "  API docs:  http://127.0.0.1:8101/docs"
	@echo "  try it:    $(VENV)/bin/dex cluster demo"
	@echo "  stop:      make down"

down:
	-$(VENV)/bin/dex cluster down --config $(CONFIG)

status:
	$(VENV)/bin/dex cluster status --config $(CONFIG)

test: $(VENV)/.installed-test install
	sh tests/services.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis dex/api/static web/node_modules build dex/engine/_compiled/*.so dex/engine/_compiled/_stamp.py
