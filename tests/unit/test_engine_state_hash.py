"""The state hash's per-level record cache (dex/engine/book.py, "State-hash
records"): after every kind of change to a book, with and without a state
hash in between, after a restore and after the stale list overflows, the
cached hash of either version (dex/engine/snapshot.py) equals the one
recomputed from the orders, and version 1's value is the one the format has
always given (old chains must still audit)."""

import importlib

import pytest

from dex.core.commands import AmendOrder, CancelOrder
from dex.engine.book import STALE_LEVELS_MAX
from tests import kit
from tests.kit import ALICE, BOB, BUY, CAROL, DAVE, SELL, SYMBOL, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")

# The scenario's final hash as computed before the record cache existed
# (cee964c's engine): the bytes hashed must not change.
SCENARIO_HASH = "505ec9fe67cdec188f990df65ce3dfc1e44475242b59ed97b7faedd9757c10eb"
# Version 2's, as both engines computed it when it was introduced.
SCENARIO_HASH_V2 = "136694dcb97bc4325bc15743badcec7432a33f001b47356b71553ed4b73a9f10"


@pytest.fixture
def snapshot_module(engine_impl):
    """The snapshot module beside the engine under test (pure or compiled)."""
    return importlib.import_module(engine_impl.__name__.rsplit(".", 1)[0] + ".snapshot")


def _agrees(ex: kit.Exchange, snapshot_module, step: str) -> None:
    # Version 2 first (what a new chain's nodes compute, from the records and
    # level terms as the changes left them), then version 1 from the same.
    for version in (2, 1):
        assert ex.engine.state_hash(version) == snapshot_module.state_hash_from_scratch(ex.engine, version), (step, version)
    ex.engine.check_invariants()  # the records and terms themselves, level by level


# The kit's helpers check invariants after every command, which hashes the
# state: these apply without, so changes can pile up between hashes.
def _buy(ex: kit.Exchange, account: int, *, price: int, qty: int) -> list:
    return ex.apply(kit.limit_order(account, BUY, price, qty), check=False)


def _sell(ex: kit.Exchange, account: int, *, price: int, qty: int) -> list:
    return ex.apply(kit.limit_order(account, SELL, price, qty), check=False)


def _cancel(ex: kit.Exchange, account: int, *, order_id: int) -> list:
    return ex.apply(CancelOrder(account=account, symbol=SYMBOL, order_id=order_id), check=False)


def _amend(ex: kit.Exchange, account: int, *, order_id: int, price: int = 0, qty: int = 0) -> list:
    return ex.apply(AmendOrder(account=account, symbol=SYMBOL, order_id=order_id, price=price, qty=qty), check=False)


def _live(book, levels, price) -> list:
    return [o for o in levels[price].orders if o.status <= 1] if price in levels else []


def _rest_levels(ex: kit.Exchange, check) -> None:
    """Five levels a side, three orders each (alice, bob, carol in turn)."""
    for i in range(5):
        for account in (ALICE, BOB, CAROL):
            _sell(ex, account, price=P + 100 * (i + 1), qty=Q)
            check(f"rest ask level {i} for account {account}")
            _buy(ex, account, price=P - 100 * (i + 1), qty=Q)
            check(f"rest bid level {i} for account {account}")


def _cancel_and_remove(ex: kit.Exchange, check) -> None:
    """Cancel from the middle of a level away from the touch, then empty the
    farthest level of each side (removed from the far end of the lists)."""
    book = ex.engine.books[SYMBOL]
    for levels, price in ((book.asks, P + 300), (book.bids, P - 300)):
        middle = _live(book, levels, price)[1]
        _cancel(ex, middle.account, order_id=middle.id)
        check(f"cancel mid-level at {price}")
    for levels, price in ((book.asks, P + 500), (book.bids, P - 500)):
        for order in _live(book, levels, price):
            _cancel(ex, order.account, order_id=order.id)
            check(f"cancel at far level {price}")
        assert price not in levels


def _sweep_and_amend(ex: kit.Exchange, check) -> None:
    """A taker empties the best level of each side (removed at the touch) and
    partly fills the next; amends keep their place or requeue far away."""
    book = ex.engine.books[SYMBOL]
    _buy(ex, DAVE, price=P + 200, qty=4 * Q)
    check("sweep the best ask level")
    _sell(ex, DAVE, price=P - 200, qty=4 * Q)
    check("sweep the best bid level")
    last = _live(book, book.asks, P + 300)[-1]
    _amend(ex, last.account, order_id=last.id, qty=Q // 2)
    check("amend down in place")
    _amend(ex, last.account, order_id=last.id, price=P + 700)
    check("amend to a new far level")
    first = _live(book, book.asks, P + 400)[0]
    _amend(ex, first.account, order_id=first.id, price=P + 300)
    check("amend to the back of a hashed level")


def _burst(ex: kit.Exchange, check) -> None:
    """Changes with no hash in between: a level emptied and re-created at the
    same price, a new best on each side, takers through them."""
    book = ex.engine.books[SYMBOL]
    for order in _live(book, book.bids, P - 300):
        _cancel(ex, order.account, order_id=order.id)
    _buy(ex, BOB, price=P - 300, qty=2 * Q)
    _buy(ex, ALICE, price=P - 50, qty=Q)
    _sell(ex, BOB, price=P + 50, qty=Q)
    _sell(ex, DAVE, price=P - 300, qty=3 * Q)
    _buy(ex, DAVE, price=P + 900, qty=2 * Q)
    check("burst")


PHASES = (_rest_levels, _cancel_and_remove, _sweep_and_amend, _burst)


def _exchange() -> kit.Exchange:
    ex = kit.funded_exchange()
    ex.fund(DAVE, USDT="1000000", BTC="100")
    return ex


def test_cached_hash_follows_every_kind_of_book_change(snapshot_module):
    ex = _exchange()

    for phase in PHASES:
        phase(ex, lambda step: _agrees(ex, snapshot_module, step))

    assert ex.engine.state_hash(1) == SCENARIO_HASH
    assert ex.engine.state_hash(2) == SCENARIO_HASH_V2


@pytest.mark.parametrize("restore_after", range(len(PHASES)))
def test_restored_engine_keeps_its_records_through_later_changes(snapshot_module, restore_after):
    ex = _exchange()
    for phase in PHASES[: restore_after + 1]:
        phase(ex, lambda step: None)

    restored = ex.restored()
    for phase in PHASES[restore_after + 1 :]:
        phase(restored, lambda step: _agrees(restored, snapshot_module, step))
    _sell(restored, BOB, price=P + 100, qty=Q)  # a level at the touch, before any hash
    _agrees(restored, snapshot_module, "restored, then changed")

    for phase in PHASES[restore_after + 1 :]:  # the original, hashed only now
        phase(ex, lambda step: None)
    _sell(ex, BOB, price=P + 100, qty=Q)
    assert restored.state_hash() == ex.state_hash()


def test_overflowing_the_stale_list_rebuilds_every_record(snapshot_module):
    ex = _exchange()
    ex.state_hash()
    book = ex.engine.books[SYMBOL]
    levels = STALE_LEVELS_MAX + 10

    for i in range(levels):  # a new level each, never hashed in between
        _buy(ex, ALICE, price=ticks("100") + i, qty=Q)
    assert book.records_rebuild and len(book.stale_keys) < STALE_LEVELS_MAX

    _agrees(ex, snapshot_module, "after the overflow")
    assert not book.records_rebuild and len(book.bid_records) == levels
    _sell(ex, BOB, price=ticks("100") + levels - 3, qty=4 * Q)
    _agrees(ex, snapshot_module, "matching after the rebuild")


def test_a_level_reused_after_its_price_emptied_hashes_as_a_new_one(snapshot_module):
    """An emptied level is kept for the book's next new level (engine.py,
    `_spare`): taken out hashed, with dead orders still queued in it, it must
    come back with nothing of its past, whether it returns at once, after a
    state hash, by a fill, a cancel or a level added at the back."""
    ex = _exchange()
    book = ex.engine.books[SYMBOL]
    ids = [kit.accepted_id(_sell(ex, BOB, price=P + 10, qty=Q)) for _ in range(3)]
    _sell(ex, CAROL, price=P + 20, qty=Q)
    _agrees(ex, snapshot_module, "levels hashed")  # P + 10's hasher holds its three orders
    _cancel(ex, BOB, order_id=ids[1])  # dead in the queue
    _buy(ex, ALICE, price=P + 10, qty=2 * Q)  # the rest filled: P + 10 taken out, spared
    assert P + 10 not in book.asks and book.spare_levels
    _sell(ex, DAVE, price=P + 30, qty=Q)  # a new level: the spare one, appended to before any hash
    _sell(ex, DAVE, price=P + 30, qty=Q)
    _agrees(ex, snapshot_module, "a spare level reused before a hash")

    for price in (P - 10, P - 20):
        _buy(ex, ALICE, price=price, qty=Q)
    _agrees(ex, snapshot_module, "bids hashed")
    order = kit.accepted_id(_buy(ex, DAVE, price=P - 30, qty=Q))
    _cancel(ex, DAVE, order_id=order)  # the last order of P - 30: taken out by a cancel
    _sell(ex, BOB, price=P - 20, qty=Q)  # and P - 20 by a fill
    _agrees(ex, snapshot_module, "levels spared")
    _buy(ex, CAROL, price=P - 40, qty=Q)  # reused after a hash
    _buy(ex, CAROL, price=P - 5, qty=Q)
    _agrees(ex, snapshot_module, "spare levels reused after a hash")

    restored = ex.restored()  # an engine that never spared a level
    assert not restored.engine.books[SYMBOL].spare_levels
    assert restored.state_hash() == ex.state_hash()


def test_invariants_catch_a_stale_record(snapshot_module):
    ex = kit.funded_exchange()
    ex.buy(ALICE, price=P - 100, qty=Q)
    ex.buy(BOB, price=P - 200, qty=Q)
    book = ex.engine.books[SYMBOL]
    book.bid_records[0] = book.bid_records[1]  # P - 200's record now says P - 100's
    book.digest = None

    with pytest.raises(AssertionError, match="state hash"):
        ex.engine.check_invariants()


def test_invariants_catch_a_stale_level_term(snapshot_module):
    ex = kit.funded_exchange()
    ex.buy(ALICE, price=P - 100, qty=Q)
    ex.buy(BOB, price=P - 200, qty=Q)
    book = ex.engine.books[SYMBOL]
    book.level_terms[P - 100] = book.level_terms[P - 200]  # P - 100's term now P - 200's, the sum unchanged

    with pytest.raises(AssertionError, match="level term is stale"):
        ex.engine.check_invariants()


def test_version_2_refreshes_only_the_levels_a_change_touched(snapshot_module, monkeypatch):
    """The point of version 2: with a hundred levels resting, a change at one
    level re-hashes that level's term only, and the book digest is of the sum
    (version 1 re-reads every level's record)."""
    ex = _exchange()
    for i in range(100):
        _buy(ex, ALICE, price=P - 100 - i, qty=Q)
    ex.engine.state_hash(2)
    calls = []
    real = snapshot_module._level_term
    if not hasattr(snapshot_module, "__pyx_capi__"):  # the pure module's functions can be wrapped
        monkeypatch.setattr(snapshot_module, "_level_term", lambda side, record: calls.append(record) or real(side, record))
    _buy(ex, BOB, price=P - 150, qty=Q)
    cached = ex.engine.state_hash(2)
    if not hasattr(snapshot_module, "__pyx_capi__"):
        assert len(calls) == 1 and calls[0][:8] == (P - 150).to_bytes(8, "little")
    assert cached == snapshot_module.state_hash_from_scratch(ex.engine, 2)
    assert len(ex.engine.books[SYMBOL].level_terms) == 100


def test_an_unknown_version_is_refused(snapshot_module):
    ex = kit.funded_exchange()
    with pytest.raises(ValueError, match="version 3"):
        ex.engine.state_hash(3)
    with pytest.raises(ValueError, match="version 0"):
        snapshot_module.state_hash_from_scratch(ex.engine, 0)
