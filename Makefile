# `make test` works on a bare machine: it makes .venv, installs dex with its
# test dependencies and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

CONFIG ?= configs/local-4.toml

.PHONY: up down status test install bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Start the four-node local cluster in the background (SQLite wherever a
# database is needed, so no server is required) and print where to look.
up: install
	@test -f var/local-4/cluster.secret || $(VENV)/bin/dex cluster init --config $(CONFIG)
	$(VENV)/bin/dex cluster up --detach --config $(CONFIG)
	@echo
	@echo "  status:    $(VENV)/bin/dex cluster status"
	@echo "  API docs:  http://127.0.0.1:8101/docs"
	@echo "  try it:    $(VENV)/bin/dex cluster demo"
	@echo "  stop:      make down"

down:
	-$(VENV)/bin/dex cluster down --config $(CONFIG)

status:
	$(VENV)/bin/dex cluster status --config $(CONFIG)

test: install
	sh tests/services.sh
	$(PY) -m pytest

bench: install
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
