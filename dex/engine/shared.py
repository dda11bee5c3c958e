"""What both engine implementations hand their callers: one class each.

The engine's source (book.py, engine.py, snapshot.py, invariants.py,
digest.py, wire.py) is
compiled a second time as `dex.engine._compiled` (docs/ENGINE.md, "Two
implementations"). Classes defined in that source exist twice, once per
implementation; the ones callers catch or check with isinstance live here,
outside the compiled copy, so there is one of each whichever engine runs.
"""

from __future__ import annotations

from typing import NamedTuple

from dex.core.types import OrderStatus, OrderType, Side, TimeInForce


class OrderView(NamedTuple):
    """An order as queries see it (live, or finished within the dedup window)."""

    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    post_only: bool
    price: int
    qty: int  # total lots, filled part included
    filled: int
    status: OrderStatus
    client_order_id: str | None
    time_ms: int


class SnapshotError(ValueError):
    """The bytes are not a snapshot of an engine with this market config."""


class CodecError(ValueError):
    """Bytes that are not a valid encoding (of a command, a proposal, a block:
    dex/engine/wire.py and dex/ledger/codec.py raise this one class)."""
