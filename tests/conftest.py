"""Shared fixtures. The repository root goes on sys.path so tests import the
kit as `tests.kit` (and subprocesses run `python -m tests.streams`) however
pytest was started."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import engines, kit, streams  # noqa: E402
from hypothesis import settings  # noqa: E402

# pytest-xdist workers (`make test`) start clusters side by side: each worker,
# and every process it starts, picks throwaway ports from a slice of its own
# (cluster.local.port_range), so two workers never race for the same port.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and _WORKER[2:].isdigit() and os.environ.get("PYTEST_XDIST_WORKER_COUNT", "").isdigit():
    from cluster.local import PORT_RANGE_ENV, port_slice

    os.environ[PORT_RANGE_ENV] = port_slice(int(_WORKER[2:]), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))

# `make test` (and CI) runs the property tests on the same examples every
# time, so its outcome depends on the code alone and a failure replays.
# `--hypothesis-profile=explore` draws new examples on every run: how the
# model test found the last engine bugs. A failure prints the example and
# lands in .hypothesis/, where the next run replays it first.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("default")


@pytest.fixture
def ex() -> Iterator[kit.Exchange]:
    """ALICE, BOB and CAROL funded on the real markets; invariants are
    checked after every command and once more when the test ends."""
    exchange = kit.funded_exchange()
    yield exchange
    exchange.engine.check_invariants()


@pytest.fixture(params=engines.NAMES)
def engine_impl(request, monkeypatch):
    """Run the test once per engine implementation (see tests/engines.py):
    `Engine` and `engine_module` in the test module, tests.kit and
    tests.streams are that implementation's for the test's duration."""
    module = engines.module(request.param)
    for target in (kit, streams, request.module):
        if hasattr(target, "Engine"):
            monkeypatch.setattr(target, "Engine", module.Engine)
        if hasattr(target, "engine_module"):
            monkeypatch.setattr(target, "engine_module", module)
    monkeypatch.setenv("DEX_PURE_PYTHON", "1" if request.param == "pure" else "0")  # for child processes
    return module
