"""Client order ids and the dedup window: a retry with a reserved id makes
no second order and describes the original as it stands."""


import pytest

from dex.core import limits
from dex.core.events import OrderDuplicate
from dex.core.types import OrderStatus
from tests import kit
from tests.kit import ALICE, BOB, BUY, IOC, SELL, limit_order, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")
WINDOW = limits.DEDUP_FINISHED_ORDERS_MAX


def _retry(ex, cid="retry-me", **fields):
    """The same place again (or with other fields): what a client does after a lost reply."""
    command = dict(account=ALICE, side=BUY, price=P, qty=Q, client_order_id=cid)
    command.update(fields)
    return ex.apply(limit_order(**command))


def test_duplicate_of_live_order_describes_it_and_changes_nothing(ex):
    oid = kit.accepted_id(_retry(ex))
    before = ex.state_hash()

    events = _retry(ex)

    assert events == [OrderDuplicate(oid, ALICE, "BTCUSDT", "retry-me", OrderStatus.NEW, 0, Q)]
    assert ex.state_hash() == before


def test_duplicate_of_partly_filled_order_reports_its_fills(ex):
    _retry(ex)
    ex.sell(BOB, price=P, qty=300)

    events = _retry(ex)

    assert (events[0].status, events[0].filled, events[0].qty) == (OrderStatus.PARTIALLY_FILLED, 300, Q)


def test_duplicate_of_filled_order_reports_filled(ex):
    ex.sell(BOB, price=P, qty=Q)
    _retry(ex)
    before = ex.state_hash()

    events = _retry(ex)

    assert (events[0].status, events[0].filled) == (OrderStatus.FILLED, Q)
    assert ex.state_hash() == before


def test_duplicate_of_cancelled_order_reports_cancelled(ex):
    _retry(ex)
    ex.cancel(ALICE, client_order_id="retry-me")

    events = _retry(ex)

    assert events[0].status == OrderStatus.CANCELED


def test_duplicate_of_expired_ioc_reports_expired(ex):
    _retry(ex, tif=IOC)

    events = _retry(ex, tif=IOC)

    assert (events[0].status, events[0].filled) == (OrderStatus.EXPIRED, 0)


def test_duplicate_of_market_order_by_quote_reports_filled_lots(ex):
    ex.sell(BOB, price=P, qty=Q)
    ex.apply(kit.market_order(ALICE, BUY, quote_qty=kit.cost(P, 400), client_order_id="mq"))

    events = ex.apply(kit.market_order(ALICE, BUY, quote_qty=kit.cost(P, 400), client_order_id="mq"))

    assert (events[0].status, events[0].filled, events[0].qty) == (OrderStatus.FILLED, 400, 400)


def test_duplicate_of_amended_order_reports_it_as_amended(ex):
    oid = kit.accepted_id(_retry(ex))
    ex.amend(ALICE, client_order_id="retry-me", qty=2 * Q)

    events = _retry(ex)

    assert (events[0].order_id, events[0].qty) == (oid, 2 * Q)


def test_duplicate_ignores_the_retrys_other_fields(ex):
    oid = kit.accepted_id(_retry(ex))

    events = _retry(ex, side=SELL, symbol="ETHUSDT", price=1, qty=1)

    assert isinstance(events[0], OrderDuplicate)
    assert (events[0].order_id, events[0].symbol) == (oid, "BTCUSDT")


def test_client_order_id_belongs_to_one_account(ex):
    _retry(ex)

    events = ex.buy(BOB, price=P, qty=Q, client_order_id="retry-me")

    assert kit.kinds(events) == ["OrderAccepted"]


def test_rejected_place_does_not_reserve_its_client_order_id(ex):
    _retry(ex, price=0)

    events = _retry(ex)

    assert kit.kinds(events) == ["OrderAccepted"]


def test_duplicate_consumes_no_order_id(ex):
    first = kit.accepted_id(_retry(ex))
    _retry(ex)

    events = ex.buy(ALICE, price=P, qty=Q)

    assert kit.accepted_id(events) == first + 1


def _finish_orders_with_client_ids(ex, count, prefix="w"):
    """`count` IOC orders of ALICE that expire at once, each with its own id."""
    ex.apply_all(limit_order(ALICE, BUY, P, Q, tif=IOC, client_order_id=f"{prefix}{i}") for i in range(count))


def test_client_order_id_stays_reserved_within_the_window(ex):
    oid = kit.accepted_id(_retry(ex))
    ex.cancel(ALICE, client_order_id="retry-me")
    _finish_orders_with_client_ids(ex, WINDOW - 1)

    events = _retry(ex)

    assert isinstance(events[0], OrderDuplicate) and events[0].order_id == oid


def test_client_order_id_is_reusable_after_the_window(ex):
    old = kit.accepted_id(_retry(ex))
    ex.cancel(ALICE, client_order_id="retry-me")
    _finish_orders_with_client_ids(ex, WINDOW)

    events = _retry(ex)

    assert kit.kinds(events) == ["OrderAccepted"]
    assert kit.accepted_id(events) != old


def test_live_order_keeps_its_id_reserved_past_the_window(ex):
    oid = kit.accepted_id(_retry(ex))
    _finish_orders_with_client_ids(ex, WINDOW + 1)

    events = _retry(ex)

    assert events[0].order_id == oid and events[0].status == OrderStatus.NEW


def test_finished_orders_without_client_id_do_not_advance_the_window(ex):
    ex.buy(ALICE, price=P, qty=Q, client_order_id="old", tif=IOC)
    ex.apply_all(limit_order(ALICE, BUY, P, Q, tif=IOC) for _ in range(WINDOW))

    events = ex.buy(ALICE, price=P, qty=Q, client_order_id="old")

    assert kit.kinds(events) == ["OrderDuplicate"]


def test_window_survives_snapshot_and_restore(ex):
    oid = kit.accepted_id(_retry(ex))
    ex.cancel(ALICE, client_order_id="retry-me")
    restored = ex.restored()

    events = _retry(restored)

    assert events[0] == OrderDuplicate(oid, ALICE, "BTCUSDT", "retry-me", OrderStatus.CANCELED, 0, Q)
