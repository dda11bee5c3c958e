"""The deterministic matching engine. Imports `dex.core` only.

Two implementations of one source (docs/ENGINE.md, "Two implementations"):
the pure-Python modules beside this file, and the same modules compiled by
Cython into `dex.engine._compiled` at install time. `Engine` is the compiled
one when it was built from the current sources, else the pure one;
`DEX_PURE_PYTHON=1` forces the pure one. `IMPLEMENTATION` names the engine
that runs ("compiled" or "pure") and `IMPLEMENTATION_REASON` why; a pure
engine chosen because the compiled one is missing or stale says so once,
loudly, in the log.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from types import ModuleType

from dex.engine import engine as pure_engine
from dex.engine import sources
from dex.engine.shared import OrderView, SnapshotError

log = logging.getLogger(__name__)

PURE = "pure"
COMPILED = "compiled"
PURE_ENV = "DEX_PURE_PYTHON"  # "1": run the pure engine even where the compiled one is built


def load_compiled() -> tuple[ModuleType | None, str]:
    """The compiled engine module, or None and why it cannot be used."""
    try:
        from dex.engine._compiled import _stamp

        modules = [importlib.import_module(f"dex.engine._compiled.{name}") for name in sources.MODULES]
    except ImportError as e:
        return None, f"the compiled engine is not built ({e}); run `make install`"
    if any(m.__file__ is None or m.__file__.endswith(".py") for m in modules):
        return None, "the compiled engine package holds Python files, not extension modules"
    if _stamp.SOURCE_SHA256 != source_digest():
        return None, "the compiled engine was built from older sources; run `make install` to rebuild it"
    return modules[sources.MODULES.index("engine")], "built from the current sources"


def source_digest() -> str:
    """SHA-256 over the engine's sources, as setup.py stamps a build."""
    return sources.source_digest(Path(__file__).resolve().parent)


def implementation_module(engine_module: ModuleType, name: str) -> ModuleType:
    """The module `name` (digest, wire, snapshot...) of the build
    `engine_module` is part of: dex.engine's or dex.engine._compiled's."""
    return importlib.import_module(f"{engine_module.__name__.rpartition('.')[0]}.{name}")


def _select() -> tuple[ModuleType, str, str]:
    if os.environ.get(PURE_ENV) == "1":
        return pure_engine, PURE, f"{PURE_ENV}=1"
    module, why = load_compiled()
    if module is None:
        log.warning("*** dex engine: running the PURE-PYTHON engine (slower, same behaviour): %s ***", why)
        return pure_engine, PURE, why
    return module, COMPILED, why


engine_module, IMPLEMENTATION, IMPLEMENTATION_REASON = _select()
Engine = engine_module.Engine
digest_module = implementation_module(engine_module, "digest")
wire_module = implementation_module(engine_module, "wire")
if IMPLEMENTATION == COMPILED and not digest_module.C_SHA256:
    IMPLEMENTATION_REASON += "; it hashes through hashlib (built without OpenSSL's headers, see setup.py)"
# dex.ledger.codec's, from the same build as Engine:
merkle_root = digest_module.merkle_root
sha256 = digest_module.sha256
decode_commands = wire_module.decode_commands
decode_events = wire_module.decode_events
encode_command = wire_module.encode_command
encode_events = wire_module.encode_events

__all__ = [
    "COMPILED", "IMPLEMENTATION", "IMPLEMENTATION_REASON", "PURE", "Engine", "OrderView", "SnapshotError",
    "decode_commands", "decode_events", "digest_module", "encode_command", "encode_events", "engine_module", "implementation_module", "load_compiled",
    "merkle_root", "sha256", "wire_module",
]
