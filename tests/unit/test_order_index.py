"""An account's live orders by id: the compiled OrderIndex (a C table) and
the pure OrderDict behave as a dict does, and a compiled order carries no
GC header (docs/ENGINE.md, "Memory per resting order")."""

from __future__ import annotations

import gc
import random
import sys

import pytest

import dex.engine
from dex.engine import book as pure_book

U64_MAX = 2**64 - 1


def _compiled_book():
    compiled, why = dex.engine.load_compiled()
    if compiled is None:
        pytest.skip(f"*** compiled engine not available: {why} ***")
    from dex.engine._compiled import book

    return book


def _indexes():
    yield "pure", pure_book, pure_book.OrderDict
    try:
        book = _compiled_book()
    except pytest.skip.Exception:
        return
    yield "compiled", book, book.OrderIndex


def _order(book_module, oid: int):
    return book_module.Order(oid, 7, 0, 100, 5, 0, None, 1, 0, 0)


@pytest.mark.parametrize("keys", ["random", "strided", "sequential", "extremes"])
def test_puts_gets_and_removes_agree_with_a_dict(keys):
    for name, book_module, make in _indexes():
        rng = random.Random(keys)
        index, model = make(), {}
        for step in range(30_000):
            if model and rng.random() < 0.45:
                # Mostly the oldest (FIFO fills), sometimes any (cancels).
                k = rng.choice(list(model)) if step % 7 == 0 else next(iter(model))
                index.remove(k)
                del model[k]
                continue
            if keys == "random":
                k = rng.randrange(1, 10**9)
            elif keys == "strided":  # one account's ids among many accounts' (same home slot mod 2^k)
                k = rng.randrange(1, 5_000) * 4096
            elif keys == "sequential":
                k = step + 1
            else:
                k = rng.choice([1, 2, U64_MAX, U64_MAX - 1, 2**63, 2**63 - 1, rng.randrange(1, U64_MAX)])
            if k in model:
                continue
            order = _order(book_module, k % 2**63)
            index.put(k, order)
            model[k] = order
            if step % 997 == 0:
                assert len(index) == len(model), name
                assert index.ids() == sorted(model), name
        assert len(index) == len(model), name
        assert index.ids() == sorted(model), name
        assert all(index.get(k) is v for k, v in model.items()), name
        for k in list(model):  # empty it: the table shrinks back and stays right
            index.remove(k)
        assert len(index) == 0 and index.ids() == [], name


def test_absent_ids_and_values_that_are_no_u64():
    for name, book_module, make in _indexes():
        index = make()
        assert index.get(5) is None and index.ids() == [] and len(index) == 0
        with pytest.raises(KeyError):
            index.remove(5)
        index.put(5, _order(book_module, 5))
        for absent in (0, -1, 6, U64_MAX, 2**64, -(2**70)):
            assert index.get(absent) is None, (name, absent)
        with pytest.raises(KeyError):
            index.remove(6)
        assert index.ids() == [5]


def test_put_of_an_id_it_holds_keeps_the_order_it_has():
    """One rule in both builds (dict.setdefault's); the engine never relies
    on it, and the snapshot reader refuses an id listed twice."""
    for name, book_module, make in _indexes():
        index = make()
        first, second = _order(book_module, 9), _order(book_module, 9)
        index.put(9, first)
        index.put(9, second)
        assert index.get(9) is first and len(index) == 1 and index.ids() == [9], name


def test_the_compiled_index_refuses_id_zero_and_finds_ints_only():
    book = _compiled_book()
    index = book.OrderIndex()
    index.put(5, _order(book, 5))
    with pytest.raises(ValueError):
        index.put(0, _order(book, 1))  # 0 marks an empty slot; the engine's ids start at 1
    with pytest.raises(OverflowError):
        index.put(-3, _order(book, 1))
    for not_an_int in (5.5, 5.0, "5", None, b"5"):
        assert index.get(not_an_int) is None
    assert index.ids() == [5] and len(index) == 1


def test_an_accounts_index_cannot_be_replaced_from_python():
    """The compiled engine calls the index through C, with no None check."""
    book = _compiled_book()
    account = book.Account(7, 2)
    with pytest.raises(AttributeError):
        account.open = None
    account.open.__init__()  # calling __init__ again keeps the table
    account.open.put(3, _order(book, 3))
    account.open.__init__()
    assert account.open.ids() == [3]


def test_a_shrink_without_memory_keeps_the_table_whole():
    """Out of memory while halving (a remove in the middle of a fill): the
    entry is removed, the table keeps its size, and every later operation
    sees a consistent table (it once pointed at half-size arrays)."""
    _testcapi = pytest.importorskip("_testcapi")
    book = _compiled_book()
    index = book.OrderIndex()
    keep = {k: _order(book, k) for k in range(1, 8)}
    for k, o in keep.items():
        index.put(k, o)  # the 7th put grows the table to 16 slots
    for k in range(1, 6):
        index.remove(k)
    _testcapi.set_nomemory(0, 0)
    try:
        index.remove(6)  # 1 of 16 slots in use: the halving fails to allocate
    finally:
        _testcapi.remove_mem_hooks()
    assert len(index) == 1 and index.ids() == [7] and index.get(7) is keep[7]
    later = {k: _order(book, k) for k in range(100, 140)}
    for k, o in later.items():
        index.put(k, o)
    assert index.ids() == [7] + sorted(later)
    assert all(index.get(k) is o for k, o in later.items())


def test_a_compiled_order_is_untracked_and_80_bytes():
    """The layout docs/ENGINE.md counts on: no field that refers to a
    container, so no GC header; eight-byte fields plus three small ones."""
    book = _compiled_book()
    order = book.Order(1, U64_MAX, 3, 2**40, 2**40, 0, "cid", -(2**63), 1, 127)
    assert not gc.is_tracked(order)
    assert sys.getsizeof(order) == 80
    assert (order.account, order.market, order.cid, order.time_ms, order.status, order.kind) == (
        U64_MAX, 3, "cid", -(2**63), 1, 127,
    )
    with pytest.raises(TypeError):
        order.cid = 5  # a str or None only: anything else could hold a reference
