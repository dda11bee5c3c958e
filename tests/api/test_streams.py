"""WebSocket streams (docs/STREAMS.md) over a real four-node cluster.

Clients are the `websockets` package's synchronous client; orders go through
the REST API of several nodes. A stream is compared with the REST view of the
same node once the node's `blocks` stream has reported the block the REST
view was taken at: on one connection, a block's message comes after every
other message of that block.

The last tests drive the Hub in-process (a real engine and History, seeded
random blocks) and check, after every block, that snapshot + diffs equal the
engine's depth, that the hub's index of resting orders is the engine's live
set, and the candle and user-stream rules.

The tests share one cluster (tests/cluster/conftest.py), so each compares
only what it caused: the depth test rebuilds the book from its own snapshot,
the trades test looks at trades after its start, the user-stream test trades
in a market no other test here trades in. The leader-kill test has a cluster
of its own, as has the slow-consumer test (a smaller stream queue).
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import time
from decimal import Decimal
from pathlib import Path
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dex.auth import Keypair, signed_payload
from dex.client import Client
from tests.cluster.harness import Cluster

WAIT_S = 30.0
RECV_S = 0.5
SYMBOL = "BTCUSDT"
USER_SYMBOL = "ETHUSDT"  # traded only by the user-stream test


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


class WS:
    """A stream connection: requests by id, stream messages kept in order."""

    def __init__(self, http_url: str, **options) -> None:
        self.ws = connect(http_url.replace("http://", "ws://") + "/ws", open_timeout=10, max_size=2**24, legacy=True, **options)
        self.ids = itertools.count(1)
        self.backlog: list[dict] = []
        self.seen: list[dict] = []  # every stream message, in arrival order

    def close(self) -> None:
        self.ws.close()

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def _next(self, timeout_s: float) -> dict | None:
        try:
            raw = self.ws.recv(timeout=timeout_s)
        except TimeoutError:
            return None
        msg = json.loads(raw)
        if "stream" in msg:
            self.seen.append(msg)
        return msg

    def call(self, method: str, params=None) -> dict:
        request_id = next(self.ids)
        body = {"method": method, "id": request_id}
        if params is not None:
            body["params"] = params
        self.ws.send(json.dumps(body))
        return self.answer(request_id)

    def answer(self, request_id) -> dict:
        """The reply with this id; stream messages before it go to the backlog."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            msg = self._next(RECV_S)
            if msg is None:
                continue
            if "stream" in msg:
                self.backlog.append(msg)
            elif msg.get("id") == request_id:
                return msg
        raise AssertionError(f"no reply to request {request_id} within {WAIT_S} s")

    def wait(self, predicate, what: str, timeout_s: float = WAIT_S) -> dict:
        """The first stream message (backlog first) for which predicate holds."""
        while self.backlog:
            msg = self.backlog.pop(0)
            if predicate(msg):
                return msg
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self._next(RECV_S)
            if msg is not None and "stream" in msg and predicate(msg):
                return msg
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    def until_block(self, height: int) -> None:
        self.wait(lambda m: m["stream"] == "blocks" and m["data"]["height"] >= height, f"block {height} on the blocks stream")


def _funded(urls, *assets) -> tuple[Client, Keypair]:
    keys = Keypair.generate()
    c = Client(urls, keys)
    for asset, amount in assets:
        c.deposit(asset, amount)
    return c, keys


def _height(cluster: Cluster, node_id: str) -> int:
    return cluster.get_json(node_id, "/api/v1/blocks", limit=1)["height"]


def login_params(challenge: str, keys: Keypair, *, timestamp_ms: int | None = None, sign_with: Keypair | None = None) -> dict:
    """LOGIN params signing `challenge` (docs/STREAMS.md)."""
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    signature = (sign_with or keys).sign(signed_payload(ts, "GET", "/ws", f"challenge={challenge}", b""))
    return {"apiKey": keys.api_key, "timestamp": ts, "signature": base64.b64encode(signature).decode()}


def _login(ws: WS, keys: Keypair, *, timestamp_ms: int | None = None, sign_with: Keypair | None = None) -> dict:
    challenge = ws.call("CHALLENGE")["result"]["challenge"]
    return ws.call("LOGIN", login_params(challenge, keys, timestamp_ms=timestamp_ms, sign_with=sign_with))


class Book:
    """A client's book from a snapshot and diffs, checking U/u continuity."""

    def __init__(self, snapshot: dict) -> None:
        assert snapshot["e"] == "depthSnapshot"
        self.u = snapshot["lastUpdateId"]
        self.bids = {p: q for p, q in snapshot["bids"]}
        self.asks = {p: q for p, q in snapshot["asks"]}
        self.diffs = 0

    def apply(self, d: dict) -> None:
        assert d["e"] == "depthUpdate"
        assert d["U"] == self.u + 1, f"gap: U {d['U']} after u {self.u}"
        assert d["u"] >= d["U"]
        self.u = d["u"]
        self.diffs += 1
        for side, levels in ((self.bids, d["b"]), (self.asks, d["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q

    def as_rest(self) -> tuple[list, list]:
        bids = sorted(self.bids.items(), key=lambda x: -Decimal(x[0]))
        asks = sorted(self.asks.items(), key=lambda x: Decimal(x[0]))
        return [list(b) for b in bids], [list(a) for a in asks]


def _follow_book(ws: WS, stream: str, until_height: int) -> Book:
    snapshot = ws.wait(lambda m: m["stream"] == stream and m["data"]["e"] == "depthSnapshot", "the depth snapshot")
    book = Book(snapshot["data"])
    while True:
        msg = ws.wait(lambda m: m["stream"] in (stream, "blocks"), "depth or block")
        if msg["stream"] == stream:
            book.apply(msg["data"])
        elif msg["data"]["height"] >= until_height:
            return book


# ------------------------------------------------------------------ tests


def test_subscribe_list_unsubscribe_and_typed_errors(cluster: Cluster) -> None:
    url = cluster.url(cluster.ids[1])
    ws = WS(url)
    try:
        assert ws.call("SUBSCRIBE", ["btcusdt@trade", "blocks", "ETHUSDT@kline_1m"]) == {"result": None, "id": 1}
        assert ws.call("LIST_SUBSCRIPTIONS") == {"result": ["blocks", "btcusdt@trade", "ethusdt@kline_1m"], "id": 2}
        assert ws.call("UNSUBSCRIBE", ["btcusdt@trade"]) == {"result": None, "id": 3}
        assert ws.call("LIST_SUBSCRIPTIONS")["result"] == ["blocks", "ethusdt@kline_1m"]
    finally:
        ws.close()

    ws = WS(url)  # a connection sends at most 10 messages a second: a fresh one for the errors
    try:
        assert ws.call("SUBSCRIBE", ["nosuch@depth"]) == {"error": {"code": -1121, "msg": "Invalid symbol."}, "id": 1}
        assert ws.call("SUBSCRIBE", ["btcusdt@bogus"])["error"]["code"] == -1102
        assert ws.call("SUBSCRIBE", "blocks")["error"]["code"] == -1102
        assert ws.call("SUBSCRIBE", ["user"])["error"]["code"] == -1002  # no LOGIN yet
        assert ws.call("FROB")["error"]["code"] == -1102
        assert ws.call("LIST_SUBSCRIPTIONS")["result"] == [], "a failed SUBSCRIBE subscribed something"
    finally:
        ws.close()

    ws = WS(url)
    try:
        ws.send_raw("{not json")
        bad = ws.answer(None)
        assert bad["error"]["code"] == -1102 and bad["id"] is None
        ws.send_raw(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 99, "pad": "x" * 9000}))
        assert ws.answer(None)["error"]["msg"].startswith("Frame too large")
        assert ws.call("LIST_SUBSCRIPTIONS")["result"] == [], "the connection did not survive bad frames"
    finally:
        ws.close()


def test_streams_per_connection_and_inbound_rate_are_bounded(cluster: Cluster) -> None:
    ws = WS(cluster.url(cluster.ids[0]))
    try:
        streams = [f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("depth", "trade", "kline_1m")] + ["blocks", "cluster"]
        assert ws.call("SUBSCRIBE", streams)["result"] is None
        assert ws.call("SUBSCRIBE", ["btcusdt@trade"])["result"] is None  # already subscribed: no new stream
        over = ["blocks"] * 65
        r = ws.call("SUBSCRIBE", over)
        assert r["error"]["code"] == -1003 and "64" in r["error"]["msg"]
    finally:
        ws.close()
    ws = WS(cluster.url(cluster.ids[0]))
    try:
        # 10 messages a second: of a burst of 25, 10 (and what refills
        # meanwhile) are answered, the rest refused, typed.
        for i in range(25):
            ws.send_raw(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1000 + i}))
        answers = []
        deadline = time.monotonic() + WAIT_S
        while len(answers) < 25 and time.monotonic() < deadline:
            m = ws._next(RECV_S)
            if m is not None and "stream" not in m:
                answers.append(m)
        refused = [a for a in answers if "error" in a]
        assert len(answers) == 25 and refused, answers
        assert all(a["error"]["code"] == -1003 for a in refused)
        answered = [a for a in answers if "result" in a]
        assert 10 <= len(answered) <= 15, len(answered)
    finally:
        ws.close()


def test_depth_snapshot_and_diffs_rebuild_the_rest_depth(cluster: Cluster) -> None:
    watcher = cluster.ids[2]
    ws = WS(cluster.url(watcher))
    late = None
    try:
        assert ws.call("SUBSCRIBE", ["btcusdt@depth", "blocks"])["result"] is None
        clients = []
        for node_id in cluster.ids:
            c, _ = _funded(cluster.url(node_id), ("USDT", "10000000"), ("BTC", "100"))
            clients.append(c)
        placed = []
        for round_ in range(6):
            for i, c in enumerate(clients):
                base = 50000 + 10 * round_
                c.batch_orders([
                    {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "price": f"{base - 5 - j}.00", "quantity": "0.01000"} for j in range(5)
                ] + [
                    {"symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "price": f"{base + 5 + j}.00", "quantity": "0.02000"} for j in range(5)
                ])
                # Cross the book now and then; cancel and amend resting orders.
                if i % 2 == 0:
                    c.place_order(SYMBOL, "BUY", price=f"{base + 7}.00", quantity="0.03000", time_in_force="IOC")
                else:
                    c.place_order(SYMBOL, "SELL", price=f"{base - 7}.00", quantity="0.02500", time_in_force="IOC")
                mine = c.open_orders(SYMBOL)
                if mine:
                    c.cancel_order(SYMBOL, order_id=mine[0]["orderId"])
                if len(mine) > 2:
                    c.amend_order(SYMBOL, order_id=mine[2]["orderId"], new_price=f"{base - 20}.00")
                placed.append(len(mine))
            if round_ == 2:
                # A second subscriber joins while orders flow, just after a
                # block that did not touch the book (a deposit answered by the
                # watcher, so applied there): its first diff's U must still be
                # its snapshot's lastUpdateId + 1.
                clients[cluster.ids.index(watcher)].deposit("ETH", "1")
                late = WS(cluster.url(watcher))
                assert late.call("SUBSCRIBE", ["btcusdt@depth", "blocks"])["result"] is None
        for c in clients:
            c.close()
        cluster.wait_converged(cluster.ids)
        rest = cluster.get_json(watcher, "/api/v1/depth", symbol=SYMBOL, limit=1000)
        height = rest["lastUpdateId"]

        for conn in (ws, late):
            book = _follow_book(conn, "btcusdt@depth", height)
            bids, asks = book.as_rest()
            assert bids == rest["bids"] and asks == rest["asks"], (bids[:5], rest["bids"][:5], asks[:5], rest["asks"][:5])
            assert book.diffs > 0
        assert rest["bids"] and rest["asks"]
    finally:
        ws.close()
        if late is not None:
            late.close()


def test_trades_klines_and_blocks_match_the_rest_api(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.ids if n != leader)
    on_leader, on_follower = WS(cluster.url(leader)), WS(cluster.url(follower))
    try:
        for ws in (on_leader, on_follower):
            assert ws.call("SUBSCRIBE", ["btcusdt@trade", "btcusdt@kline_1m", "blocks"])["result"] is None
        start = _height(cluster, follower)
        before = cluster.get_json(follower, "/api/v1/trades", symbol=SYMBOL, limit=1)
        last_id = before[-1]["id"] if before else 0  # earlier tests' trades on the shared cluster
        maker, _ = _funded(cluster.url(leader), ("BTC", "10"))
        taker, _ = _funded(cluster.url(follower), ("USDT", "10000000"))
        for i in range(5):
            maker.place_order(SYMBOL, "SELL", price=f"{50000 + i}.00", quantity="0.10000")
        taker.place_order(SYMBOL, "BUY", price="50010.00", quantity="0.35000")
        taker.place_order(SYMBOL, "BUY", type="MARKET", quantity="0.05000")
        cluster.wait_converged(cluster.ids)
        height = _height(cluster, follower)
        rest_trades = [t for t in cluster.get_json(follower, "/api/v1/trades", symbol=SYMBOL) if t["id"] > last_id]
        assert rest_trades
        rest_klines = cluster.get_json(follower, "/api/v1/klines", symbol=SYMBOL, interval="1m")

        for ws, is_leader in ((on_follower, False), (on_leader, True)):
            ws.until_block(height)
            trades = [m["data"] for m in ws.seen if m["stream"] == "btcusdt@trade"]
            assert [(t["t"], t["p"], t["q"], t["T"], t["m"]) for t in trades] == [
                (t["id"], t["price"], t["qty"], t["time"], t["isBuyerMaker"]) for t in rest_trades
            ]
            assert all(t["s"] == SYMBOL and t["h"] > start for t in trades)
            klines = [m["data"]["k"] for m in ws.seen if m["stream"] == "btcusdt@kline_1m"]
            last = klines[-1]
            row = rest_klines[-1]
            assert [last["t"], last["o"], last["h"], last["l"], last["c"], last["v"], last["T"], last["q"], last["n"]] == row[:9]
            assert last["x"] is False
            blocks = [m["data"] for m in ws.seen if m["stream"] == "blocks"]
            heights = [b["height"] for b in blocks]
            assert heights == list(range(heights[0], heights[-1] + 1)), heights
            assert heights[0] <= start + 1 and heights[-1] >= height
            for parent, child in zip(blocks, blocks[1:]):
                assert child["parent"] == child["parentHash"] == parent["hash"]
            rest_block = cluster.get_json(follower, f"/api/v1/blocks/{blocks[-1]['height']}")["header"]
            assert {k: blocks[-1][k] for k in rest_block} == rest_block
            assert sum(b["trades"] for b in blocks) == len(rest_trades)
            # Every node's own commit latency (block time to applied there), followers' too.
            assert all(isinstance(b["commitMs"], float) and b["commitMs"] >= 0 for b in blocks), blocks
        maker.close()
        taker.close()
    finally:
        on_leader.close()
        on_follower.close()


def test_cluster_stream_reports_a_new_leader_after_the_leader_dies(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    leader = cluster.wait_leader()
    watcher = next(n for n in cluster.ids if n != leader)
    ws = WS(cluster.url(watcher))
    try:
        assert ws.call("SUBSCRIBE", ["cluster"])["result"] is None
        first = ws.wait(lambda m: m["stream"] == "cluster", "the cluster status")["data"]
        assert first["leader"] == leader and first["node"] == watcher and len(first["nodes"]) == 4

        cluster.kill(leader)

        def new_leader(m) -> bool:
            d = m["data"]
            gone = next(n for n in d["nodes"] if n["id"] == leader)
            return d["leader"] not in (None, leader) and gone["reachable"] is False

        after = ws.wait(new_leader, f"a leader other than {leader}", timeout_s=60)["data"]
        assert after["term"] > first["term"]
        assert after["leader"] == cluster.wait_leader(not_id=leader)
    finally:
        ws.close()


def test_user_stream_reports_own_orders_and_balances_only(cluster: Cluster) -> None:
    node = cluster.ids[3]
    alice, alice_keys = _funded(cluster.urls, ("USDT", "100000"))
    bob, bob_keys = _funded(cluster.urls, ("ETH", "50"))
    ws_alice, ws_bob = WS(cluster.url(node)), WS(cluster.url(node))
    try:
        assert ws_alice.call("SUBSCRIBE", ["user"])["error"]["code"] == -1002
        assert _login(ws_alice, alice_keys, sign_with=bob_keys)["error"]["code"] == -1022
        assert _login(ws_alice, alice_keys, timestamp_ms=time.time_ns() // 1_000_000 - 120_000)["error"]["code"] == -1021
        assert _login(ws_alice, alice_keys) == {"result": {"account": str(alice_keys.account)}, "id": 7}
        assert _login(ws_bob, bob_keys)["result"] == {"account": str(bob_keys.account)}
        for ws in (ws_alice, ws_bob):
            assert ws.call("SUBSCRIBE", ["blocks"])["result"] is None
            assert ws.call("LIST_SUBSCRIPTIONS")["result"] == ["blocks", "user"]

        bid = alice.place_order(USER_SYMBOL, "BUY", price="3000.00", quantity="0.5000", client_order_id="alice-1")
        sold = bob.place_order(USER_SYMBOL, "SELL", price="2900.00", quantity="0.2000")
        cluster.wait_converged(cluster.ids)
        height = _height(cluster, node)
        for ws in (ws_alice, ws_bob):
            ws.until_block(height)

        a_reports = [m["data"] for m in ws_alice.seen if m["stream"] == "user" and m["data"]["e"] == "executionReport"]
        assert [(r["i"], r["x"], r["X"]) for r in a_reports] == [
            (bid["orderId"], "NEW", "NEW"),
            (bid["orderId"], "TRADE", "PARTIALLY_FILLED"),
        ], a_reports
        trade = a_reports[1]
        assert trade["c"] == "alice-1" and trade["S"] == "BUY" and trade["o"] == "LIMIT" and trade["f"] == "GTC"
        assert trade["s"] == USER_SYMBOL and trade["q"] == "0.5000" and trade["p"] == "3000.00"
        assert trade["l"] == "0.2000" and trade["z"] == "0.2000" and trade["L"] == "3000.00"
        assert trade["h"] == sold["blockHeight"]
        account = alice.account()
        usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
        balances = [m["data"] for m in ws_alice.seen if m["stream"] == "user" and m["data"]["e"] == "balanceUpdate"]
        last_usdt = [b for b in balances if b["a"] == "USDT"][-1]
        assert (last_usdt["f"], last_usdt["l"]) == (usdt["free"], usdt["locked"])

        b_reports = [m["data"] for m in ws_bob.seen if m["stream"] == "user" and m["data"]["e"] == "executionReport"]
        assert {r["i"] for r in b_reports} == {sold["orderId"]}
        assert [(r["x"], r["X"]) for r in b_reports] == [("NEW", "NEW"), ("TRADE", "FILLED")]
        assert bid["orderId"] not in {r["i"] for r in b_reports}
        alice.close()
        bob.close()
    finally:
        ws_alice.close()
        ws_bob.close()


# --------------------------------------------------- the slow consumer

QUEUE_SMALL = 64


def _tiny_socket(url: str) -> socket.socket:
    """A connected socket with a small receive buffer, so a client that does
    not read backs up into the server quickly."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    return s


@pytest.mark.cluster_settings(stream_queue_max=QUEUE_SMALL)
def test_a_slow_consumer_is_closed_and_the_node_serves_the_others(tuned_cluster: Cluster) -> None:
    cluster = tuned_cluster
    node = cluster.ids[1]
    url = cluster.url(node)
    slow = WS(url, sock=_tiny_socket(url), max_queue=1)
    healthy = WS(url)
    try:
        assert slow.call("SUBSCRIBE", ["btcusdt@trade", "btcusdt@depth", "btcusdt@kline_1m", "blocks"])["result"] is None
        assert healthy.call("SUBSCRIBE", ["blocks"])["result"] is None
        maker, _ = _funded(cluster.urls, ("BTC", "100"))
        taker, _ = _funded(cluster.urls, ("USDT", "40000000"))
        # ~2,000 trade messages (100 fills a block), while `slow` reads nothing.
        for _ in range(20):
            maker.batch_orders([{"symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "price": f"{50000 + j}.00", "quantity": "0.00100"} for j in range(100)])
            taker.place_order(SYMBOL, "BUY", price="50100.00", quantity="0.10000")
        height = _height(cluster, node)
        healthy.until_block(height)  # the others keep getting their messages
        assert cluster.get_json(node, "/healthz")["status"] == "ok"

        with pytest.raises(ConnectionClosed) as closed:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                slow._next(RECV_S)
        rcvd = closed.value.rcvd
        assert rcvd is not None and rcvd.code == 1008 and rcvd.reason.startswith("slow consumer:"), closed.value
        received = len(slow.seen)
        assert received < 2000, f"the slow consumer got {received} messages: it was never behind"

        # The node still serves new connections and the healthy one.
        again = WS(url)
        assert again.call("SUBSCRIBE", ["blocks"])["result"] is None
        maker.place_order(SYMBOL, "SELL", price="60000.00", quantity="0.00100")
        h2 = _height(cluster, node)
        healthy.until_block(h2)
        again.until_block(h2)
        again.close()
        maker.close()
        taker.close()
    finally:
        slow.close()
        healthy.close()


# --------------------------------------------- the hub in-process, seeded

def _fake_node():
    """What the hub reads of a node, with a real engine and History and a
    loop stand-in that records what the Raft side hands over."""
    import threading
    from types import SimpleNamespace

    from dex.api.history import History
    from dex.core.markets import load_markets
    from dex.engine.engine import Engine

    markets = load_markets(Path(__file__).resolve().parents[2] / "configs" / "markets.toml")
    handed: list = []
    loop = SimpleNamespace(call_soon_threadsafe=lambda fn, *args: (handed.append(args), fn(*args)))
    from dex.ledger.port import LedgerPort

    replica = SimpleNamespace(lock=threading.RLock(), engine=Engine(markets), height=0)
    node = SimpleNamespace(
        cfg=SimpleNamespace(markets=markets, stream_queue_max=1000), replica=replica, port=LedgerPort(replica), history=History(markets),
        block_listeners=[], loop=loop, node_id="n1",
    )
    return node, handed


def _drain(conn) -> list[dict]:
    out = []
    while not conn.queue.empty():
        out.append(json.loads(conn.queue.get_nowait()))
    return out


def _apply_block(node, commands: list, time_ms: int) -> None:
    from dex.ledger.codec import BlockHeader, Proposal

    replica = node.replica
    results = [replica.engine.apply(c, time_ms) for c in commands]
    replica.height += 1
    header = BlockHeader(height=replica.height, parent=b"\0" * 32, leader="n1", term=1, time_ms=time_ms, commands_count=len(commands),
                         commands_root=b"\0" * 32, results_root=b"\0" * 32, state_hash=b"\0" * 32)
    node.history.on_block(header, b"\1" * 32, None, results)
    for listener in node.block_listeners:
        listener(header, b"\1" * 32, Proposal(leader="n1", term=1, time_ms=time_ms, commands=(), auth_index=()), results)


def _random_commands(rng, node, accounts, symbols) -> list:
    """A block's worth of places (resting and crossing), cancels and amends."""
    from dex.core.commands import AmendOrder, CancelOrder, PlaceOrder
    from dex.core.types import Side, TimeInForce

    commands = []
    for _ in range(rng.randint(1, 12)):
        account, symbol = rng.choice(accounts), rng.choice(symbols)
        live = node.replica.engine.open_orders(account, symbol)
        roll = rng.random()
        if live and roll < 0.2:
            commands.append(CancelOrder(account=account, symbol=symbol, order_id=rng.choice(live).order_id))
        elif live and roll < 0.35:
            o = rng.choice(live)
            commands.append(AmendOrder(account=account, symbol=symbol, order_id=o.order_id,
                                       price=rng.choice((0, o.price + rng.randint(-30, 30))), qty=rng.choice((0, o.qty + 1000 * rng.randint(-2, 5)))))
        else:
            commands.append(PlaceOrder(account=account, symbol=symbol, side=rng.choice((Side.BUY, Side.SELL)),
                                       tif=rng.choice((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC)),
                                       price=100_000 + rng.randint(-40, 40), qty=1000 * rng.randint(1, 20)))
    return commands


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_depth_diffs_rebuild_the_engine_book_after_every_block(seed: int) -> None:
    """Random places (resting and crossing), cancels and amends in two
    markets: after every block, snapshot + diffs == the engine's depth."""
    import random

    from dex.api import render
    from dex.api.streams import Conn, Hub
    from dex.core.commands import Deposit

    rng = random.Random(seed)
    node, handed = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)  # dex/node.py registers it in a node
    symbols = ("BTCUSDT", "ETHUSDT")
    accounts = list(range(1, 9))
    _apply_block(node, [Deposit(account=a, asset=x, amount=10**16) for a in accounts for x in ("USDT", "BTC", "ETH")], 1)
    early, late = Conn(None, 100_000), Conn(None, 100_000)
    assert hub.admit(early) is None and hub.admit(late) is None
    hub.subscribe(early, [f"{s.lower()}@depth" for s in symbols])
    books = {(early, m["data"]["s"]): Book(m["data"]) for m in _drain(early)}
    for height in range(2, 120):
        _apply_block(node, _random_commands(rng, node, accounts, symbols), 1_000 * height)
        if height == 60:  # a subscriber joins half way
            hub.subscribe(late, [f"{s.lower()}@depth" for s in symbols])
        for conn in (early, late):
            for m in _drain(conn):
                data = m["data"]
                if data["e"] == "depthSnapshot":
                    books[(conn, data["s"])] = Book(data)
                else:
                    books[(conn, data["s"])].apply(data)
        for (conn, symbol), book in books.items():
            m = node.cfg.markets.market(symbol)
            bids, asks = node.replica.engine.depth(symbol, 1000)
            want = ([[render.price(m, p), render.qty(m, q)] for p, q in bids], [[render.price(m, p), render.qty(m, q)] for p, q in asks])
            assert book.as_rest() == want, f"seed {seed}, block {height}, {symbol}"
    assert len(books) == 4 and all(b.diffs > 20 for b in books.values()), [b.diffs for b in books.values()]
    live = {o[0] for s in symbols for o in node.replica.engine.live_orders(s)}  # O_ID
    assert set(hub.depth.resting) == live, "the hub's index of resting orders is not the engine's live set"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_hub_nobody_is_connected_to_stops_following_and_a_new_connection_gets_a_true_book(seed: int) -> None:
    """With no connection for idle_s the hub stops following blocks (no
    index, no candles); the next connection re-reads the book before it is
    counted in, so its snapshot and diffs rebuild the engine's depth after
    every block, and the index of resting orders is the engine's again.
    Connections then leave and come back a second time."""
    import random

    from dex.api import render
    from dex.api.streams import Conn, Hub
    from dex.core.commands import Deposit

    rng = random.Random(seed)
    node, _ = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)
    symbols = ("BTCUSDT", "ETHUSDT")
    accounts = list(range(1, 9))
    _apply_block(node, [Deposit(account=a, asset=x, amount=10**16) for a in accounts for x in ("USDT", "BTC", "ETH")], 1)
    height = 1
    for round_ in range(2):
        hub.idle_s = 0.0  # idle at once: the next block finds nobody connected
        for _ in range(30):
            height += 1
            _apply_block(node, _random_commands(rng, node, accounts, symbols), 1_000 * height)
        assert hub.detached == round_ + 1 and hub.depth.resting == {}, "a hub nobody is connected to still follows blocks"
        hub.idle_s = 3600.0
        conn = Conn(None, 100_000)
        assert hub.admit(conn) is None
        hub.subscribe(conn, [f"{s.lower()}@depth" for s in symbols])
        books = {m["data"]["s"]: Book(m["data"]) for m in _drain(conn)}
        for _ in range(40):
            height += 1
            _apply_block(node, _random_commands(rng, node, accounts, symbols), 1_000 * height)
            for m in _drain(conn):
                books[m["data"]["s"]].apply(m["data"])
            for symbol, book in books.items():
                m = node.cfg.markets.market(symbol)
                bids, asks = node.replica.engine.depth(symbol, 1000)
                want = ([[render.price(m, p), render.qty(m, q)] for p, q in bids], [[render.price(m, p), render.qty(m, q)] for p, q in asks])
                assert book.as_rest() == want, f"seed {seed}, round {round_}, block {height}, {symbol}"
        live = {o[0] for s in symbols for o in node.replica.engine.live_orders(s)}  # O_ID
        assert set(hub.depth.resting) == live, "the hub's index of resting orders is not the engine's live set"
        assert sum(b.diffs for b in books.values()) > 10
        hub.forget(conn)
    assert hub.detached == 2


def test_a_candle_after_an_idle_spell_holds_the_trades_of_the_spell() -> None:
    """Trades in the current minute while nobody was connected are in the
    candle a later subscriber gets (rebuilt from History, not a stale one)."""
    from dex.api.streams import Conn, Hub
    from dex.core.commands import Deposit, PlaceOrder
    from dex.core.types import Side

    node, _ = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)
    early = Conn(None, 1000)
    assert hub.admit(early) is None
    hub.subscribe(early, ["btcusdt@kline_1m"])
    _apply_block(node, [Deposit(account=a, asset=x, amount=10**16) for a in (1, 2) for x in ("USDT", "BTC")], 60_000)

    def cross(time_ms: int, price: int) -> None:
        _apply_block(node, [
            PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=price, qty=1000),
            PlaceOrder(account=2, symbol=SYMBOL, side=Side.BUY, price=price, qty=1000),
        ], time_ms)

    cross(60_500, 100_000)  # the early subscriber's candle: 1 trade
    hub.forget(early)
    hub.idle_s = 0.0
    cross(61_000, 100_200)  # unseen: the hub stopped following
    cross(62_000, 99_800)
    assert hub.detached == 1
    late = Conn(None, 1000)
    assert hub.admit(late) is None
    hub.subscribe(late, ["btcusdt@kline_1m"])
    cross(63_000, 100_100)
    k = [m["data"]["k"] for m in _drain(late)][-1]
    assert (k["t"], k["x"], k["o"], k["h"], k["l"], k["c"], k["n"]) == (60_000, False, "1000.00", "1002.00", "998.00", "1001.00", 4)


def test_a_candle_is_closed_when_a_later_minute_trades() -> None:
    from dex.api.streams import Conn, Hub
    from dex.core.commands import Deposit, PlaceOrder
    from dex.core.types import Side

    node, handed = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)  # dex/node.py registers it in a node
    conn = Conn(None, 1000)
    assert hub.admit(conn) is None
    hub.subscribe(conn, ["btcusdt@kline_1m"])
    _apply_block(node, [Deposit(account=a, asset=x, amount=10**16) for a in (1, 2) for x in ("USDT", "BTC")], 60_000)
    for time_ms, price in ((60_500, 100_000), (61_000, 100_100), (125_000, 99_900)):
        _apply_block(node, [
            PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=price, qty=1000),
            PlaceOrder(account=2, symbol=SYMBOL, side=Side.BUY, price=price, qty=1000),
        ], time_ms)
    klines = [m["data"]["k"] for m in _drain(conn)]
    assert [(k["t"], k["x"], k["o"], k["c"], k["n"]) for k in klines] == [
        (60_000, False, "1000.00", "1000.00", 1),
        (60_000, False, "1000.00", "1001.00", 2),
        (60_000, True, "1000.00", "1001.00", 2),
        (120_000, False, "999.00", "999.00", 1),
    ]
    assert klines[2]["h"] == "1001.00" and klines[2]["l"] == "1000.00" and klines[2]["v"] == "0.02000"


def test_user_stream_reports_cancels_amends_and_rejects_in_process() -> None:
    from dex.api.streams import Conn, Hub
    from dex.core.commands import AmendOrder, CancelOrder, Deposit, PlaceOrder
    from dex.core.types import Side

    node, _ = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)  # dex/node.py registers it in a node
    conn = Conn(None, 1000)
    assert hub.admit(conn) is None
    conn.account = 7
    hub.subscribe(conn, ["user"])
    _apply_block(node, [Deposit(account=7, asset="USDT", amount=10**12)], 1_000)
    _apply_block(node, [PlaceOrder(account=7, symbol=SYMBOL, side=Side.BUY, price=100_000, qty=1000, client_order_id="a")], 2_000)
    oid = node.replica.engine.open_orders(7)[0].order_id
    _apply_block(node, [
        AmendOrder(account=7, symbol=SYMBOL, order_id=oid, price=100_500),
        CancelOrder(account=7, symbol=SYMBOL, order_id=oid),
        CancelOrder(account=7, symbol=SYMBOL, order_id=oid),  # rejected: already gone
        PlaceOrder(account=8, symbol=SYMBOL, side=Side.BUY, price=100_000, qty=1000),  # another account's
    ], 3_000)
    data = [m["data"] for m in _drain(conn)]
    reports = [(d["x"], d["X"], d.get("p")) for d in data if d["e"] == "executionReport"]
    assert reports == [
        ("NEW", "NEW", "1000.00"),
        ("AMENDMENT", "NEW", "1005.00"),  # X: the order's status after this event, not after the block
        ("CANCELED", "CANCELED", "1005.00"),
        ("REJECTED", "REJECTED", None),
    ], reports
    usdt = [(d["f"], d["l"], d["h"]) for d in data if d["e"] == "balanceUpdate" and d["a"] == "USDT"]
    assert usdt == [("10000.00000000", "0.00000000", 1), ("9990.00000000", "10.00000000", 2), ("10000.00000000", "0.00000000", 3)], usdt
