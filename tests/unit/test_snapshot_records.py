"""The order records the compiled snapshot module writes byte by byte
(dex/engine/snapshot.py, `_orders_bytes`) are the bytes `_order` packs.

The byte writer is the source's compiled branch: here it runs as Python (the
pure module with `_COMPILED` set) and, where the engine is built, as C; both
against `b"".join(_order(o) ...)`, on orders with and without client order
ids, u64 account ids past 2^63, negative and large times, finished entries,
and every start position.
"""

from __future__ import annotations

import pytest

import dex.engine
from dex.engine import book as pure_book
from dex.engine import snapshot as pure_snapshot
from dex.engine.book import pack_kind

LIVE, FINISHED = 1, 3  # PARTIALLY_FILLED, CANCELED (dex.core.types.OrderStatus)


def _orders(book_module) -> list:
    big_account, account = 2**64 - 1, 7  # account ids: the largest u64 and a small one
    made = []
    for i, (cid, time_ms, status) in enumerate(
        [
            (None, 1_700_000_000_000, 0),
            ("a", 0, LIVE),
            ("x" * 36, -1, FINISHED),
            (None, -(2**63), LIVE),
            ("client-order-0001", 2**63 - 1, 0),
            ("", 5, FINISHED),  # never made by the engine: an empty id is None; still one byte of length
            # Past the engine's 36: a snapshot's length byte allows 255.
            ("L" * 255, 9, LIVE),
            ("M" * 200, 10, 0),
        ]
    ):
        owner = big_account if i % 2 else account
        kind = pack_kind(i % 2, i % 3, bool(i % 2), i % 4, i % 2)
        made.append(book_module.Order(2**63 - 1 - i, owner, 0, 2**40 - i, 2**40 + i, i * 3, cid, time_ms, status, kind))
    return made


def _expected(orders, start: int, live_only: bool) -> bytes:
    return b"".join(pure_snapshot._order(o) for o in orders[start:] if o.status <= LIVE or not live_only)


@pytest.mark.parametrize("live_only", [False, True])
def test_the_byte_writer_run_as_python_writes_what_struct_packs(monkeypatch, live_only):
    orders = _orders(pure_book)
    monkeypatch.setattr(pure_snapshot, "_COMPILED", True)
    for start in range(len(orders) + 1):
        written = pure_snapshot._orders_bytes(orders, start, live_only)

        assert type(written) is bytearray  # the writer ran, not the struct path
        assert bytes(written) == _expected(orders, start, live_only)


@pytest.mark.parametrize("live_only", [False, True])
def test_the_compiled_byte_writer_writes_what_struct_packs(live_only):
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    from dex.engine._compiled import book as compiled_book
    from dex.engine._compiled import snapshot as compiled_snapshot

    orders = _orders(compiled_book)
    for start in range(len(orders) + 1):
        assert bytes(compiled_snapshot._orders_bytes(orders, start, live_only)) == _expected(orders, start, live_only)


def test_a_client_order_id_past_one_length_byte_is_refused_by_both_paths(monkeypatch):
    order = _orders(pure_book)[0]
    order.cid = "y" * 256
    with pytest.raises(Exception):
        pure_snapshot._orders_bytes([order], 0, False)
    monkeypatch.setattr(pure_snapshot, "_COMPILED", True)
    with pytest.raises(ValueError):
        pure_snapshot._orders_bytes([order], 0, False)



@pytest.mark.parametrize("price", [1, 255, 256, 10_500_000, 2**40, 2**62, 2**63 - 1])
def test_the_compiled_level_record_is_the_packed_price_and_digest(price):
    """`_record` (a level's 40 bytes in its book digest's input): one C call
    compiled, `struct.pack("<Q", price) + digest` pure; the same bytes."""
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    from dex.engine._compiled import book as compiled_book
    from dex.engine._compiled import snapshot as compiled_snapshot

    records = []
    for book_module, snapshot_module in ((pure_book, pure_snapshot), (compiled_book, compiled_snapshot)):
        level = book_module.Level(price)
        level.orders.extend(_orders(book_module))
        records.append(snapshot_module._record(level))
    assert records[0] == records[1]
    assert len(records[1]) == 40 and records[1][:8] == price.to_bytes(8, "little")
