"""Both engine implementations, for tests that must hold for each.

`dex.engine` runs one engine per process (the compiled one when it is
built). Tests of the engine run against both: the pure-Python modules and
the Cython-compiled copy of the same source (docs/ENGINE.md, "Two
implementations"). A module opts in with

    pytestmark = pytest.mark.usefixtures("engine_impl")

and every test in it then runs once per implementation, with `Engine` (in
the test module, in tests.kit and in tests.streams) and `engine_module`
bound to that implementation's. Where the compiled engine is not built its
half is skipped, with the reason in the skip line (pytest -ra prints it).
"""

from __future__ import annotations

from types import ModuleType

import pytest

import dex.engine
from dex.engine import engine as pure_engine

NAMES = ("pure", "compiled")


def module(name: str) -> ModuleType:
    """The engine module of implementation `name`; skips the test if the
    compiled one is not built."""
    if name == "pure":
        return pure_engine
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    return compiled


def available() -> list[ModuleType]:
    """Every implementation this machine can run, the pure one first."""
    compiled, _ = dex.engine.load_compiled()
    return [pure_engine] if compiled is None else [pure_engine, compiled]
