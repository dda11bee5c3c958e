"""Which engine runs: the compiled one when built from the current sources,
the pure one when forced (DEX_PURE_PYTHON=1) or when the compiled one is
missing, and the test harness really runs each (tests/engines.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import dex.engine
from dex.engine import engine as pure_engine
from tests import kit

SUBPROCESS_TIMEOUT_S = 60
PROBE = "import json, dex.engine as e; print(json.dumps([e.IMPLEMENTATION, e.IMPLEMENTATION_REASON, e.Engine.__module__]))"


def _probe(**env: str) -> list:
    environment = {k: v for k, v in os.environ.items() if k != dex.engine.PURE_ENV}
    environment.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=kit.ROOT, env=environment, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.usefixtures("engine_impl")
def test_the_harness_runs_the_implementation_it_names(ex, engine_impl):
    assert type(ex.engine) is engine_impl.Engine
    assert kit.Engine is engine_impl.Engine


def test_pure_python_is_forced_by_the_environment():
    implementation, reason, module = _probe(**{dex.engine.PURE_ENV: "1"})

    assert implementation == dex.engine.PURE and module == "dex.engine.engine", reason


def test_the_compiled_engine_runs_by_default_where_it_is_built():
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")

    implementation, reason, module = _probe()

    assert implementation == dex.engine.COMPILED and module == "dex.engine._compiled.engine", reason
    assert not compiled.__file__.endswith(".py")


def test_the_two_implementations_are_distinct_modules_of_one_source():
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")

    assert compiled.Engine is not pure_engine.Engine
    # What callers catch or compare is one class, whichever engine runs.
    assert compiled.OrderView is pure_engine.OrderView is dex.engine.OrderView


def test_a_compiled_engine_built_from_older_sources_is_not_used(monkeypatch):
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    monkeypatch.setattr(dex.engine, "source_digest", lambda: "0" * 64)  # as if engine.py changed since the build

    module, why = dex.engine.load_compiled()

    assert module is None and "older sources" in why
