"""The deterministic matching engine. Imports `dex.core` only."""

from dex.engine.engine import Engine, OrderView
from dex.engine.snapshot import SnapshotError

__all__ = ["Engine", "OrderView", "SnapshotError"]
