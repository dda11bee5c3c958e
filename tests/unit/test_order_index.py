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


def test_the_compiled_index_refuses_an_id_it_holds_and_id_zero():
    book = _compiled_book()
    index = book.OrderIndex()
    index.put(9, _order(book, 9))
    with pytest.raises(KeyError):
        index.put(9, _order(book, 9))
    with pytest.raises(KeyError):
        index.put(0, _order(book, 1))
    with pytest.raises(OverflowError):
        index.put(-3, _order(book, 1))
    assert index.ids() == [9] and len(index) == 1


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
