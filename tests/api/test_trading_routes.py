"""Trading routes beyond new order: cancel all, amend, test order, my trades.

The tests share one real four-node cluster (the module's `cluster`), each
with accounts of its own; what one leaves resting never crosses another's
orders: bids rest at 40,000 or below, and the one test that trades does so
above them and leaves nothing resting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dex.auth import Keypair
from dex.client import Client, DexError
from tests.cluster.harness import Cluster


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


@contextmanager
def funded(url: str | list[str], **assets: str) -> Iterator[Client]:
    """A client of a fresh account holding `assets` (e.g. USDT="100000")."""
    with Client(url, Keypair.generate()) as c:
        for asset, amount in assets.items():
            c.deposit(asset, amount)
        yield c


def follower_of(cluster: Cluster) -> str:
    leader = cluster.wait_leader()
    return next(n for n in cluster.ids if n != leader)


def buy(c: Client, price: str = "40000.00", qty: str = "0.01000", symbol: str = "BTCUSDT") -> dict:
    return c.place_order(symbol, "BUY", "LIMIT", price=price, quantity=qty)


def open_ids(c: Client, symbol: str | None = None) -> set[int]:
    return {o["orderId"] for o in c.open_orders(symbol)}


# ------------------------------------------------------------ DELETE /openOrders


def test_cancel_all_in_one_market_cancels_only_the_callers_orders_there(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a, funded(cluster.urls, USDT="100000") as b:
        a_btc = buy(a)["orderId"]
        a_eth = buy(a, "2000.00", "0.1000", "ETHUSDT")["orderId"]
        b_btc = buy(b)["orderId"]

        cancelled = a.cancel_open_orders("BTCUSDT")

        assert [(o["orderId"], o["status"], o["symbol"]) for o in cancelled] == [(a_btc, "CANCELED", "BTCUSDT")]
        assert open_ids(a) == {a_eth}
        assert open_ids(b) == {b_btc}


def test_cancel_all_through_a_follower_cancels_every_market(cluster: Cluster) -> None:
    follower = follower_of(cluster)
    with funded(cluster.url(follower), USDT="100000") as a, funded(cluster.urls, USDT="100000") as b:
        placed = {buy(a)["orderId"], buy(a, "2000.00", "0.1000", "ETHUSDT")["orderId"]}
        b_btc = buy(b)["orderId"]

        cancelled = a.cancel_open_orders()

        assert {o["orderId"] for o in cancelled} == placed
        assert all(o["status"] == "CANCELED" and o["origQty"] for o in cancelled)
        assert cluster.head(follower).height >= cancelled[0]["blockHeight"], "the follower answered before applying the block"
        assert open_ids(a) == set()
        assert open_ids(b) == {b_btc}


def test_cancel_all_with_nothing_open_returns_an_empty_list(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="1000") as a:
        cancelled = a.cancel_open_orders("BTCUSDT")

        assert cancelled == []


def test_cancel_all_in_an_unknown_market_is_refused(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="1000") as a:
        with pytest.raises(DexError) as e:
            a.cancel_open_orders("NOPEUSDT")

        assert (e.value.status, e.value.code) == (400, -1121)


# ------------------------------------------------------------ PUT /order/amend


def test_amend_lowering_the_quantity_keeps_priority(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a:
        oid = buy(a, qty="0.01000")["orderId"]

        amended = a.amend_order("BTCUSDT", order_id=oid, new_qty="0.00400")

        assert amended["priorityKept"] is True
        assert (amended["orderId"], amended["price"], amended["origQty"], amended["executedQty"], amended["status"]) == (
            oid, "40000.00", "0.00400", "0.00000", "NEW",
        )
        assert amended["fills"] == [] and amended["blockHeight"] > 0 and amended["blockHash"]
        assert a.get_order("BTCUSDT", oid)["origQty"] == "0.00400"


def test_amend_raising_the_quantity_through_a_follower_loses_priority(cluster: Cluster) -> None:
    follower = follower_of(cluster)
    with funded(cluster.url(follower), USDT="100000") as a:
        cid = buy(a, qty="0.01000")["clientOrderId"]

        amended = a.amend_order("BTCUSDT", client_order_id=cid, new_qty="0.02000")

        assert amended["priorityKept"] is False
        assert amended["origQty"] == "0.02000" and amended["status"] == "NEW"
        assert cluster.head(follower).height >= amended["blockHeight"]


def test_amend_to_a_crossing_price_fills_and_reports_the_fills(cluster: Cluster) -> None:
    with funded(cluster.urls, BTC="1") as seller, funded(cluster.urls, USDT="100000") as a:
        seller.place_order("BTCUSDT", "SELL", "LIMIT", price="40010.00", quantity="0.00100")
        oid = buy(a, "40000.00", "0.00100")["orderId"]

        amended = a.amend_order("BTCUSDT", order_id=oid, new_price="40010.00")

        assert amended["status"] == "FILLED" and amended["executedQty"] == "0.00100"
        assert [(f["price"], f["qty"], f["commissionAsset"]) for f in amended["fills"]] == [("40010.00", "0.00100", "BTC")]


def test_an_account_cannot_amend_or_cancel_another_accounts_order(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a, funded(cluster.urls, USDT="100000") as b:
        b_order = buy(b)["orderId"]

        with pytest.raises(DexError) as amend:
            a.amend_order("BTCUSDT", order_id=b_order, new_qty="0.00100")
        with pytest.raises(DexError) as cancel:
            a.cancel_order("BTCUSDT", order_id=b_order)

        assert (amend.value.status, amend.value.code) == (404, -2013)
        assert (cancel.value.status, cancel.value.code) == (404, -2013)
        assert [(o["orderId"], o["origQty"], o["status"]) for o in b.open_orders()] == [(b_order, "0.01000", "NEW")]


def test_amend_with_a_price_off_the_tick_or_a_quantity_off_the_lot_is_a_filter_failure(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a:
        oid = buy(a)["orderId"]

        with pytest.raises(DexError) as price:
            a.amend_order("BTCUSDT", order_id=oid, new_price="40000.001")
        with pytest.raises(DexError) as qty:
            a.amend_order("BTCUSDT", order_id=oid, new_qty="0.000001")

        assert (price.value.status, price.value.code, price.value.msg) == (400, -1013, "Filter failure: PRICE_FILTER")
        assert (qty.value.status, qty.value.code, qty.value.msg) == (400, -1013, "Filter failure: LOT_SIZE")
        assert a.get_order("BTCUSDT", oid)["origQty"] == "0.01000"


def test_amend_without_a_new_price_or_quantity_is_refused(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a:
        oid = buy(a)["orderId"]

        with pytest.raises(DexError) as e:
            a.amend_order("BTCUSDT", order_id=oid)

        assert (e.value.status, e.value.code) == (400, -1102)


# ------------------------------------------------------------ POST /order/test


def test_a_test_order_answers_empty_and_places_nothing(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    with funded(cluster.url(leader), USDT="100000") as a:
        before = cluster.wait_converged(cluster.ids)

        answer = a.test_order("BTCUSDT", "BUY", "LIMIT", price="40000.00", quantity="0.01000")

        assert answer == {}
        assert a.open_orders() == []
        assert cluster.head(leader) == before, "a test order changed the chain or the state"


def test_a_test_order_over_the_balance_is_rejected_as_a_real_one_would_be(cluster: Cluster) -> None:
    follower = follower_of(cluster)
    with funded(cluster.url(follower), USDT="100") as a:
        with pytest.raises(DexError) as e:
            a.test_order("BTCUSDT", "BUY", "LIMIT", price="40000.00", quantity="0.01000")

        assert (e.value.status, e.value.code) == (400, -2010)
        assert a.open_orders() == []


def test_a_test_order_off_the_tick_is_a_filter_failure(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="100000") as a:
        with pytest.raises(DexError) as e:
            a.test_order("BTCUSDT", "BUY", "LIMIT", price="40000.001", quantity="0.01000")

        assert (e.value.code, e.value.msg) == (-1013, "Filter failure: PRICE_FILTER")


# ------------------------------------------------------------ GET /myTrades


def test_my_trades_shows_each_side_its_own_fills_and_nothing_else(cluster: Cluster) -> None:
    with (
        funded(cluster.urls, BTC="1") as maker,
        funded(cluster.urls, USDT="100000") as taker,
        funded(cluster.urls, BTC="1") as other_maker,
        funded(cluster.urls, USDT="100000") as other_taker,
    ):
        # Above every bid the other tests leave resting (40,000 at most).
        ask = maker.place_order("BTCUSDT", "SELL", "LIMIT", price="45000.00", quantity="0.00400")["orderId"]
        bid = taker.place_order("BTCUSDT", "BUY", "LIMIT", price="45000.00", quantity="0.00400")
        other_maker.place_order("BTCUSDT", "SELL", "LIMIT", price="46000.00", quantity="0.00100")
        other_taker.place_order("BTCUSDT", "BUY", "LIMIT", price="46000.00", quantity="0.00100")
        trade_id = bid["fills"][0]["tradeId"]

        mine_as_maker = maker.my_trades("BTCUSDT")
        mine_as_taker = taker.my_trades("BTCUSDT")

        assert [(t["id"], t["orderId"], t["price"], t["qty"], t["quoteQty"], t["isBuyer"], t["isMaker"], t["commissionAsset"]) for t in mine_as_maker] == [
            (trade_id, ask, "45000.00", "0.00400", "180.00000000", False, True, "USDT"),
        ]
        assert [(t["id"], t["orderId"], t["isBuyer"], t["isMaker"], t["commissionAsset"]) for t in mine_as_taker] == [
            (trade_id, bid["orderId"], True, False, "BTC"),
        ]
        assert mine_as_taker[0]["commission"] == bid["fills"][0]["commission"]
        assert maker.my_trades("ETHUSDT") == []


def test_my_trades_limit_is_bounded(cluster: Cluster) -> None:
    with funded(cluster.urls, USDT="1000") as a:
        with pytest.raises(DexError) as e:
            a.my_trades("BTCUSDT", limit=1001)

        assert (e.value.status, e.value.code) == (400, -1102)


# --------------------------------------------------------------- POST /withdraw


def test_withdraw_takes_free_balance_out_and_refuses_more_than_is_free(cluster: Cluster) -> None:
    follower = follower_of(cluster)
    with funded(cluster.url(follower), USDT="1000") as a:
        buy(a, "40000.00", "0.01000")  # locks 400 USDT
        out = a.withdraw("USDT", "250.5")
        assert (out["asset"], out["amount"], out["free"]) == ("USDT", "250.5", "349.50000000")

        with pytest.raises(DexError) as too_much:
            a.withdraw("USDT", "349.50000001")
        assert (too_much.value.status, too_much.value.code) == (400, -4026)
        balances = {b["asset"]: (b["free"], b["locked"]) for b in a.account()["balances"]}
        assert balances["USDT"] == ("349.50000000", "400.00000000")


# ------------------------------------------------------------ client order ids


@pytest.mark.parametrize("cid", ["ordré", "a\tb", "東京"])
def test_a_client_order_id_outside_printable_ascii_is_refused_everywhere_it_is_taken(cluster: Cluster, cid: str) -> None:
    """Refused with -1100 before it reaches a block: the ledger codec stores client ids as ASCII, and
    one it cannot encode once made the leader answer 500."""
    follower = follower_of(cluster)
    with funded([cluster.url(follower)], USDT="100000") as a:
        before = cluster.wait_converged(cluster.ids)
        attempts = {
            "POST /order": lambda: a.place_order("BTCUSDT", "BUY", price="40000.00", quantity="0.01000", client_order_id=cid),
            "POST /batchOrders": lambda: a.batch_orders([
                {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "40000.00", "quantity": "0.01000", "newClientOrderId": cid},
            ]),
            "DELETE /order": lambda: a.cancel_order("BTCUSDT", client_order_id=cid),
            "PUT /order/amend": lambda: a.amend_order("BTCUSDT", client_order_id=cid, new_qty="0.00500"),
            "GET /order": lambda: a.get_order("BTCUSDT", client_order_id=cid),
            "POST /order/test": lambda: a.test_order("BTCUSDT", "BUY", price="40000.00", quantity="0.01000", client_order_id=cid),
        }
        outcomes = {}
        for route, attempt in attempts.items():
            try:
                outcomes[route] = ("answered", attempt())
            except DexError as e:
                outcomes[route] = (e.status, e.code)
        refused = {route: (400, -1100) for route in attempts}
        refused["POST /batchOrders"] = outcomes["POST /batchOrders"]  # checked below: per-order answers
        assert outcomes == refused, outcomes
        batch = outcomes["POST /batchOrders"]
        assert batch[0] == "answered" and [o.get("code") for o in batch[1]] == [-1100], batch
        assert cluster.head(cluster.wait_leader()) == before, "a refused client id reached a block"
        assert a.open_orders() == []
