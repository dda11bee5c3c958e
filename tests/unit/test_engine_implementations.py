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


def test_the_pure_engine_runs_where_cython_is_not_installed():
    """engine.py imports `cython` for the compiled build's casts; a machine
    without Cython (no compiler, nothing built) must still place and match."""
    script = (
        "import sys; sys.modules['cython'] = None\n"  # `import cython` raises ImportError
        "from dex.core.markets import load_markets\n"
        "from dex.core.commands import Deposit, PlaceOrder\n"
        "from dex.core.types import Side, OrderType, TimeInForce\n"
        "import dex.engine as e\n"
        "m = load_markets('configs/markets.toml'); b = m.market('BTCUSDT')\n"
        "eng = e.Engine(m)\n"
        "for a in (1, 2):\n"
        "    eng.apply(Deposit(account=a, asset=b.base.name, amount=10**15), 0)\n"
        "    eng.apply(Deposit(account=a, asset=b.quote.name, amount=10**15), 0)\n"
        "p = 2 * -(-b.min_notional_units // b.notional_units)\n"
        "eng.apply(PlaceOrder(account=1, symbol='BTCUSDT', side=Side.SELL, type=OrderType.LIMIT, tif=TimeInForce.GTC, price=p, qty=1), 0)\n"
        "ev = eng.apply(PlaceOrder(account=2, symbol='BTCUSDT', side=Side.BUY, type=OrderType.LIMIT, tif=TimeInForce.GTC, price=p, qty=1), 0)\n"
        "print(e.IMPLEMENTATION, sys.modules['cython'], [type(x).__name__ for x in ev])\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != dex.engine.PURE_ENV}
    environment[dex.engine.PURE_ENV] = "1"
    out = subprocess.run([sys.executable, "-c", script], cwd=kit.ROOT, env=environment, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == dex.engine.PURE and "Trade" in out.stdout, out.stdout
