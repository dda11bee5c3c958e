"""WebSocket streams at /ws: depth, trades, candles, blocks, cluster status
and the user stream (the protocol is docs/STREAMS.md).

Two threads meet here. The Raft thread calls `Hub.on_block` right after each
block is applied: it works out which price levels of which markets the block
changed (from the block's events and an index of where each live order
rests: a cancel's event does not say its price), reads those levels' new
totals and the touched accounts' balances from the engine under the replica
lock, renders every message once as JSON text and hands the lot to the event
loop with `call_soon_threadsafe`. The event loop fans the texts out to the
connections that subscribed; nothing on the Raft thread waits for a client.

Depth ordering. Update ids are block heights. `_last_u[symbol]` (Raft
thread) is the last height that changed the market, so a block's diff has
U = that + 1 and u = its height. A depth subscription takes its snapshot on
the event loop under the replica lock at the applied height L, in the same
step that registers it, so every diff with u <= L is dropped for it and the
first diff with u > L follows the snapshot with nothing missing; its U is
rewritten to L + 1 for that connection (the blocks between touched nothing).

Bounds: STREAMS_PER_CONNECTION_MAX, CONNECTIONS_PER_NODE_MAX,
FRAME_BYTES_MAX, INBOUND_PER_S, and an outbound queue of
`stream_queue_max` (cluster config, default 4,096) messages per connection:
a connection whose queue is full is closed 1008 "slow consumer: ...".
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from fastapi import APIRouter, WebSocket

from dex.api import render
from dex.api.cluster import nodes_status
from dex.api.deps import check_signature, check_timestamp, parse_api_key
from dex.api.errors import MANDATORY_PARAM, TOO_MANY_REQUESTS, UNAUTHORIZED, ApiError
from dex.api.history import TRADES_PER_MARKET_MAX
from dex.api.ledger import header_json
from dex.api.market import DEPTH_LIMIT_MAX, INTERVALS_MS, fold_candles
from dex.api.ratelimit import TokenBuckets
from dex.auth import account_id, signed_payload
from dex.core.events import (
    BalanceChanged,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    Trade,
)
from dex.core.markets import units_to_amount
from dex.core.reasons import Reason
from dex.core.types import OrderType, Side

log = logging.getLogger("dex.api.streams")

router = APIRouter(tags=["streams"])

WS_PING_INTERVAL_S = 20.0  # uvicorn pings every connection this often...
WS_PING_TIMEOUT_S = 20.0  # ...and closes one that has not answered within this
STREAMS_PER_CONNECTION_MAX = 64
CONNECTIONS_PER_NODE_MAX = 256
FRAME_BYTES_MAX = 8 * 1024  # a larger inbound frame is answered with an error
WS_FRAME_BYTES_CLOSE = 64 * 1024  # uvicorn closes the connection (1009) above this
INBOUND_PER_S = 10  # inbound messages per connection per second (burst as many)
DEPTH_SNAPSHOT_LEVELS_MAX = DEPTH_LIMIT_MAX  # per side
CLUSTER_POLL_S = 0.5
CLUSTER_HEADS_S = 1.0  # push the status at least this often while heads move
CLOSE_TIMEOUT_S = 10.0  # closing a connection that does not read gives up after this
KLINE_INTERVAL = "1m"
FORMATS_CACHED_MAX = 8192  # rendered prices (and quantities) remembered per market
KLINE_STEP_MS = INTERVALS_MS[KLINE_INTERVAL]
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
assert FRAME_BYTES_MAX < WS_FRAME_BYTES_CLOSE
assert WS_PING_TIMEOUT_S <= WS_PING_INTERVAL_S

_DEPTH, _OTHER = 0, 1
BUY, SELL = Side.BUY, Side.SELL


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps with options builds an encoder per call


def _text(stream: str, data: dict) -> str:
    return _encode({"stream": stream, "data": data})


def _reply(result, request_id) -> str:
    return _encode({"result": result, "id": request_id})


def _error(code: int, msg: str, request_id=None) -> str:
    return _encode({"error": {"code": code, "msg": msg}, "id": request_id})


class _Formats:
    """render.price / render.qty of one market, remembered: the same prices
    and sizes come back block after block, and rendering goes through Decimal.
    Raft thread only; at most FORMATS_CACHED_MAX of each (then it starts over)."""

    __slots__ = ("market", "prices", "qtys")

    def __init__(self, market) -> None:
        self.market = market
        self.prices: dict[int, str] = {}
        self.qtys: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        text = self.prices.get(ticks)
        if text is None:
            if len(self.prices) >= FORMATS_CACHED_MAX:
                self.prices.clear()
            text = self.prices[ticks] = render.price(self.market, ticks)
        return text

    def qty(self, lots: int) -> str:
        text = self.qtys.get(lots)
        if text is None:
            if len(self.qtys) >= FORMATS_CACHED_MAX:
                self.qtys.clear()
            text = self.qtys[lots] = render.qty(self.market, lots)
        return text


class Conn:
    """One WebSocket connection: its subscriptions and its outbound queue."""

    def __init__(self, ws: WebSocket, queue_max: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_max)
        self.streams: set[str] = set()
        self.depth_last: dict[str, int] = {}  # symbol -> u of the last depth event (or snapshot) sent
        self.account: int | None = None
        self.inbound = TokenBuckets(INBOUND_PER_S, INBOUND_PER_S, keys_max=1)
        self.closed = False
        self.done = asyncio.Event()  # the connection is over: stop reading
        self.sender: asyncio.Task | None = None

    async def send_loop(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                await self.ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away
            self.done.set()

    async def close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code, reason), CLOSE_TIMEOUT_S)
        except Exception:  # timed out (the peer reads nothing) or already gone
            pass
        finally:
            self.done.set()


class Hub:
    """Every connection of this node, and the Raft-thread side that feeds them."""

    def __init__(self, node) -> None:
        self.node = node
        self.markets = {m.symbol: m for m in node.cfg.markets.markets}
        self.by_stream_symbol = {m.symbol.lower(): m for m in node.cfg.markets.markets}
        self.assets = {a.name: a for a in node.cfg.markets.assets}
        self.queue_max = node.cfg.stream_queue_max
        # Event-loop state (read, never written, by the Raft thread).
        self.conns: set[Conn] = set()
        self.subs: dict[str, set[Conn]] = {}  # stream -> connections
        self.users: dict[int, set[Conn]] = {}  # account -> connections with the `user` stream
        self.slow_closed = 0
        self.cluster_doc: dict | None = None
        self._cluster_task: asyncio.Task | None = None
        # Raft-thread state.
        self._lock = threading.Lock()
        self._ready = False
        self._height = 0
        self._resting: dict[int, tuple[str, bool, int]] = {}  # live order id -> (symbol, is bid, price)
        self._last_u: dict[str, int] = {}
        # symbol -> [the current 1m candle] (market.fold_candles), kept only
        # while someone subscribes to the market's candles, else None.
        self._candles: dict[str, list | None] = {}
        self._fmt = {symbol: _Formats(m) for symbol, m in self.markets.items()}

    # ------------------------------------------------------ Raft thread

    def attach(self) -> None:
        """Start following blocks (once, at start-up; the node registered
        `on_block`): index the book as it stands."""
        with self._lock:
            with self.node.port.view() as view:
                self._index_book(view)
                self._height = view.height
            for symbol in self.markets:
                self._last_u[symbol] = self._height
                self._candles[symbol] = None  # built from History when first needed
            self._ready = True

    def _index_book(self, view) -> None:
        """Rebuild the index of resting orders (a LedgerView: the lock is held)."""
        self._resting = {
            oid: (symbol, is_bid, price)
            for symbol in self.markets
            for oid, is_bid, price in view.resting_orders(symbol)
        }

    def on_block(self, header, block_hash, proposal, results) -> None:
        with self._lock:
            if not self._ready or header.height <= self._height:
                return  # before attach, or replayed
            resync = header.height != self._height + 1  # a snapshot was loaded: blocks went by unseen
            self._height = header.height
            loop = self.node.loop
            building = loop is not None and bool(self.conns)
            messages, user_messages = self._block(header, block_hash, proposal, results, resync, building)
        if building:
            loop.call_soon_threadsafe(self._dispatch, resync, messages, user_messages)

    def _block(self, header, block_hash, proposal, results, resync, building):
        height = header.height
        users = self.users
        watched = bool(users)
        subs = self.subs
        resting = self._resting
        touched: dict[str, set] = {}  # symbol -> {(is bid, price)}
        seen: dict[int, int] = {}  # order id -> account: orders that may rest after the block
        trades: dict[str, list] = {}
        mine: list = []  # events of accounts with a user stream
        limit = OrderType.LIMIT
        # Hot loop (every event of every block): class tests in order of frequency.
        for events in results:
            for ev in events:
                cls = ev.__class__
                if cls is Trade:
                    fills = trades.get(ev.symbol)
                    if fills is None:
                        fills = trades[ev.symbol] = []
                    fills.append(ev)
                    seen[ev.maker_order_id] = ev.maker_account  # the taker is seen by its accept or amend
                    if watched and (ev.maker_account in users or ev.taker_account in users):
                        mine.append(ev)
                    continue
                if cls is OrderAccepted:
                    if ev.type == limit:
                        seen[ev.order_id] = ev.account
                elif cls is OrderCancelled:
                    where = resting.pop(ev.order_id, None)
                    if where is not None:
                        touched.setdefault(where[0], set()).add(where[1:])
                elif cls is OrderExpired:
                    resting.pop(ev.order_id, None)
                elif cls is OrderAmended:
                    where = resting.get(ev.order_id)
                    if where is not None:
                        touched.setdefault(where[0], set()).add(where[1:])
                    seen[ev.order_id] = ev.account
                if watched and ev.account in users:  # every other event names one account
                    mine.append(ev)
        for symbol, fills in trades.items():  # the makers' levels
            touched.setdefault(symbol, set()).update({(t.taker_side == SELL, t.price) for t in fills})
        levels: dict[str, tuple[list, list]] = {}
        balances: dict[int, dict] = {}
        views: dict[int, object] = {}
        with self.node.port.view() as view:
            if resync:
                self._index_book(view)
                resting = self._resting
            for oid, account in seen.items():
                where = view.resting_order(account, oid)
                if where is None:
                    resting.pop(oid, None)
                    continue
                resting[oid] = where
                touched.setdefault(where[0], set()).add(where[1:])
            if building:
                for symbol, prices in touched.items():
                    levels[symbol] = view.level_totals(symbol, prices)
                for account in {a for ev in mine for a in _accounts(ev) if a in users}:
                    balances[account] = view.balances(account)
                for ev in mine:
                    for oid, account in _orders(ev):
                        if account in users and oid not in views:
                            views[oid] = view.order(account, ev.symbol, oid)
        last_u = self._last_u
        previous = {symbol: last_u[symbol] for symbol in touched}
        for symbol in touched:
            last_u[symbol] = height
        candles_changed = []
        for symbol, fills in trades.items():
            if f"{symbol.lower()}@kline_{KLINE_INTERVAL}" not in subs:
                self._candles[symbol] = None
                continue
            m = self.markets[symbol]
            candles = self._candles[symbol]
            closed = None
            if candles is None:  # History already holds this block's trades
                minute_ms = header.time_ms - header.time_ms % KLINE_STEP_MS
                recent = [(t, ms) for t, ms in self.node.history.trades(symbol, TRADES_PER_MARKET_MAX) if ms >= minute_ms]
                candles = self._candles[symbol] = fold_candles([], m, recent, KLINE_STEP_MS)[-1:]
            else:
                before = candles[0][0]
                fold_candles(candles, m, [(t, header.time_ms) for t in fills], KLINE_STEP_MS)
                if len(candles) > 1 and candles[0][0] == before:
                    closed = candles[0]
                del candles[:-1]
            if candles:
                candles_changed.append((symbol, closed, list(candles[0])))
        if not building:
            return None, None
        now = _now_ms()
        messages: list = []  # (kind, stream, text, extra)
        for symbol, (bids, asks) in levels.items():
            stream = f"{symbol.lower()}@depth"
            if stream not in subs:
                continue
            f = self._fmt[symbol]
            data = {
                "e": "depthUpdate", "E": now, "s": symbol, "U": previous[symbol] + 1, "u": height,
                "b": [[f.price(p), f.qty(q)] for p, q in bids],
                "a": [[f.price(p), f.qty(q)] for p, q in asks],
            }
            messages.append((_DEPTH, stream, _text(stream, data), (symbol, data)))
        for symbol, fills in trades.items():
            stream = f"{symbol.lower()}@trade"
            if stream not in subs:
                continue
            f = self._fmt[symbol]
            for t in fills:
                data = {
                    "e": "trade", "E": now, "s": symbol, "t": t.trade_id, "p": f.price(t.price), "q": f.qty(t.qty),
                    "T": header.time_ms, "m": t.taker_side == Side.SELL, "h": height,
                }
                messages.append((_OTHER, stream, _text(stream, data), None))
        for symbol, closed, current in candles_changed:
            stream = f"{symbol.lower()}@kline_{KLINE_INTERVAL}"
            if stream not in subs:
                continue
            m = self.markets[symbol]
            for c, final in ((closed, True), (current, False)):
                if c is not None:
                    messages.append((_OTHER, stream, _text(stream, _kline(m, c, final, now)), None))
        if "blocks" in subs:  # last: a client that sees block h has every other message of h
            commit_ms = round(time.time_ns() / 1e6 - proposal.time_ms, 1) if header.leader == self.node.node_id else None
            data = {"e": "block", "E": now, **header_json(header, block_hash)}
            data.update(parent=header.parent.hex(), commands=header.commands_count, trades=sum(len(f) for f in trades.values()), commitMs=commit_ms)
            messages.append((_OTHER, "blocks", _text("blocks", data), None))
        user_messages = self._user_messages(header, mine, balances, views, now) if mine else []
        return messages, user_messages

    def _user_messages(self, header, mine: list, balances: dict, views: dict, now: int) -> list:
        """executionReport and balanceUpdate texts as (account, text)."""
        users = self.users
        history = self.node.history
        block_fills: dict[int, int] = {}
        for ev in mine:
            if ev.__class__ is Trade:
                block_fills[ev.maker_order_id] = block_fills.get(ev.maker_order_id, 0) + ev.qty
                block_fills[ev.taker_order_id] = block_fills.get(ev.taker_order_id, 0) + ev.qty
        last_event: dict[int, int] = {}
        for i, ev in enumerate(mine):
            for oid, _ in _orders(ev):
                last_event[oid] = i
        orders: dict[int, dict] = {}  # oid -> {static fields, filled so far, final status}

        def order(oid: int, account: int, symbol: str) -> dict:
            o = orders.get(oid)
            if o is not None:
                return o
            record, view = history.order(oid), views.get(oid)
            if record is not None and record.account == account:
                o = {"side": record.side, "type": record.type, "tif": record.tif, "price": record.price, "qty": record.qty,
                     "cid": record.client_order_id, "filled_end": record.filled, "status": record.status}
            elif view is not None:
                o = {"side": view.side, "type": view.type, "tif": view.tif, "price": view.price, "qty": view.qty,
                     "cid": view.client_order_id, "filled_end": view.filled, "status": view.status}
            else:
                o = {"side": None, "type": None, "tif": None, "price": 0, "qty": 0, "cid": None, "filled_end": block_fills.get(oid, 0), "status": None}
            o["filled"] = o["filled_end"] - block_fills.get(oid, 0)
            orders[oid] = o
            return o

        out: list = []
        for i, ev in enumerate(mine):
            cls = ev.__class__
            if cls is Trade:
                m = self.markets[ev.symbol]
                for oid, account in ((ev.maker_order_id, ev.maker_account), (ev.taker_order_id, ev.taker_account)):
                    if account not in users:
                        continue
                    o = order(oid, account, ev.symbol)
                    o["filled"] += ev.qty
                    if last_event[oid] == i and o["status"] is not None:
                        status = o["status"].name
                    else:
                        status = "FILLED" if o["qty"] and o["filled"] >= o["qty"] else "PARTIALLY_FILLED"
                    out.append((account, self._report(m, ev.symbol, oid, o, "TRADE", status, header, now, trade=ev)))
            elif cls is OrderRejected:
                m = self.markets.get(ev.symbol or "")
                data = {
                    "e": "executionReport", "E": now, "s": ev.symbol, "c": ev.client_order_id, "x": "REJECTED", "X": "REJECTED",
                    "i": ev.order_id, "r": ev.reason.msg, "rc": ev.reason.code, "T": header.time_ms, "h": header.height,
                }
                out.append((ev.account, _text("user", data)))
            elif cls in _EXECUTION:
                m = self.markets[ev.symbol]
                o = order(ev.order_id, ev.account, ev.symbol)
                x = _EXECUTION[cls]
                if x == "AMENDMENT":
                    o["price"], o["qty"] = ev.price, ev.qty
                if last_event[ev.order_id] == i and o["status"] is not None:
                    status = o["status"].name
                elif x == "NEW" or x == "AMENDMENT":
                    status = "PARTIALLY_FILLED" if o["filled"] else "NEW"
                else:
                    status = x
                out.append((ev.account, self._report(m, ev.symbol, ev.order_id, o, x, status, header, now)))
        for account, held in balances.items():
            changed: set[str] = set()
            for ev in mine:
                if account not in _accounts(ev):
                    continue
                if ev.__class__ is BalanceChanged:
                    changed.add(ev.asset)
                elif ev.__class__ is not OrderRejected:
                    m = self.markets[ev.symbol]
                    changed.update((m.base.name, m.quote.name))
            for name in sorted(changed):
                free, locked = held[name]
                asset = self.assets[name]
                data = {"e": "balanceUpdate", "E": now, "a": name, "f": units_to_amount(asset, free), "l": units_to_amount(asset, locked), "h": header.height}
                out.append((account, _text("user", data)))
        return out

    def _report(self, m, symbol: str, oid: int, o: dict, x: str, status: str, header, now: int, trade=None) -> str:
        f = self._fmt[symbol]
        data = {
            "e": "executionReport", "E": now, "s": symbol, "c": o["cid"],
            "S": None if o["side"] is None else o["side"].name,
            "o": None if o["type"] is None else o["type"].name,
            "f": None if o["tif"] is None else o["tif"].name,
            "q": f.qty(o["qty"]), "p": f.price(o["price"]),
            "x": x, "X": status, "i": oid,
            "l": f.qty(trade.qty if trade is not None else 0),
            "z": f.qty(o["filled"]),
            "L": f.price(trade.price if trade is not None else 0),
            "t": trade.trade_id if trade is not None else -1,
            "T": header.time_ms, "h": header.height,
        }
        return _text("user", data)

    # ------------------------------------------------------- event loop

    def _dispatch(self, resync: bool, messages: list, user_messages: list) -> None:
        if resync:
            for stream, conns in list(self.subs.items()):
                if stream.endswith("@depth"):
                    for conn in list(conns):
                        self._snapshot(conn, self.by_stream_symbol[stream.split("@")[0]].symbol)
        for account, text in user_messages:
            for conn in list(self.users.get(account, ())):
                self.put(conn, text)
        for kind, stream, text, extra in messages:
            conns = self.subs.get(stream)
            if not conns:
                continue
            if kind == _DEPTH:
                symbol, data = extra
                for conn in list(conns):
                    last = conn.depth_last.get(symbol)
                    if last is None or data["u"] <= last:
                        continue
                    conn.depth_last[symbol] = data["u"]
                    if data["U"] != last + 1:  # the first event after the snapshot
                        self.put(conn, _text(stream, {**data, "U": last + 1}))
                    else:
                        self.put(conn, text)
            else:
                for conn in list(conns):
                    self.put(conn, text)

    def put(self, conn: Conn, text: str) -> None:
        if conn.closed:
            return
        try:
            conn.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.slow_closed += 1
            log.warning("closing a slow stream consumer: %d messages queued", conn.queue.qsize())
            self.drop(conn, CLOSE_POLICY_VIOLATION, f"slow consumer: {conn.queue.qsize()} messages queued, the limit")

    def drop(self, conn: Conn, code: int, reason: str) -> None:
        """Stop sending to `conn` at once and close it in the background."""
        if conn.closed:
            return
        self.forget(conn)
        if conn.sender is not None:
            conn.sender.cancel()
        asyncio.get_running_loop().create_task(conn.close(code, reason))

    def forget(self, conn: Conn) -> None:
        conn.closed = True
        self.conns.discard(conn)
        for stream in conn.streams:
            self._unsubscribe_one(conn, stream)
        conn.streams.clear()

    def _unsubscribe_one(self, conn: Conn, stream: str) -> None:
        conns = self.subs.get(stream)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.subs[stream]
        if stream == "user" and conn.account is not None:
            mine = self.users.get(conn.account)
            if mine is not None:
                mine.discard(conn)
                if not mine:
                    del self.users[conn.account]
        if stream.endswith("@depth"):
            conn.depth_last.pop(self.by_stream_symbol[stream.split("@")[0]].symbol, None)

    def _snapshot(self, conn: Conn, symbol: str) -> None:
        """Queue a depth snapshot; diffs up to its height will be dropped for conn."""
        m = self.markets[symbol]
        bids, asks, height = self.node.port.depth(symbol, DEPTH_SNAPSHOT_LEVELS_MAX)
        conn.depth_last[symbol] = height
        data = {
            "e": "depthSnapshot", "E": _now_ms(), "s": symbol, "lastUpdateId": height,
            "bids": [[render.price(m, p), render.qty(m, q)] for p, q in bids],
            "asks": [[render.price(m, p), render.qty(m, q)] for p, q in asks],
        }
        self.put(conn, _text(f"{symbol.lower()}@depth", data))

    def _stream_name(self, name) -> str:
        """The canonical (lower case) stream name, or ApiError."""
        if not isinstance(name, str) or len(name) > 64:
            raise ApiError(400, MANDATORY_PARAM, "A stream name is a string, e.g. btcusdt@depth.")
        name = name.lower()
        if name in ("blocks", "cluster", "user"):
            return name
        symbol, at, kind = name.partition("@")
        if not at or kind not in ("depth", "trade", f"kline_{KLINE_INTERVAL}"):
            raise ApiError(400, MANDATORY_PARAM, f"Unknown stream {name!r}: <symbol>@depth, <symbol>@trade, <symbol>@kline_1m, blocks, cluster or user.")
        if symbol not in self.by_stream_symbol:
            raise ApiError.of(Reason.UNKNOWN_SYMBOL)
        return name

    def check_subscribe(self, conn: Conn, params) -> list[str]:
        """The canonical names of a SUBSCRIBE's streams, or ApiError (nothing subscribed)."""
        if not isinstance(params, list) or not params:
            raise ApiError(400, MANDATORY_PARAM, "params must be a non-empty list of stream names.")
        if len(params) > STREAMS_PER_CONNECTION_MAX:
            raise ApiError(400, TOO_MANY_REQUESTS, f"Too many streams: at most {STREAMS_PER_CONNECTION_MAX} per connection.")
        names = [self._stream_name(p) for p in params]
        if "user" in names and conn.account is None:
            raise ApiError(401, UNAUTHORIZED, "The user stream needs a LOGIN first.")
        if len(conn.streams | set(names)) > STREAMS_PER_CONNECTION_MAX:
            raise ApiError(400, TOO_MANY_REQUESTS, f"Too many streams: at most {STREAMS_PER_CONNECTION_MAX} per connection.")
        return list(dict.fromkeys(names))

    def subscribe(self, conn: Conn, names: list[str]) -> None:
        """Subscribe to checked names; a depth stream queues its snapshot now."""
        for name in names:
            self._subscribe_one(conn, name)

    def _subscribe_one(self, conn: Conn, name: str) -> None:
        conn.streams.add(name)
        self.subs.setdefault(name, set()).add(conn)
        if name == "user":
            self.users.setdefault(conn.account, set()).add(conn)
        elif name.endswith("@depth"):
            self._snapshot(conn, self.by_stream_symbol[name.split("@")[0]].symbol)
        elif name == "cluster":
            if self.cluster_doc is not None:
                self.put(conn, _text("cluster", self.cluster_doc))
            if self._cluster_task is None:
                self._cluster_task = asyncio.get_running_loop().create_task(self._poll_cluster())

    def unsubscribe(self, conn: Conn, params) -> None:
        if not isinstance(params, list) or not params:
            raise ApiError(400, MANDATORY_PARAM, "params must be a non-empty list of stream names.")
        for name in [self._stream_name(p) for p in params]:
            if name in conn.streams:
                conn.streams.discard(name)
                self._unsubscribe_one(conn, name)

    def login(self, conn: Conn, params) -> int:
        if not isinstance(params, dict):
            raise ApiError(400, MANDATORY_PARAM, "LOGIN params: {apiKey, timestamp, signature}.")
        key, ts, sig = params.get("apiKey"), params.get("timestamp"), params.get("signature")
        window = params.get("recvWindow")
        if not isinstance(key, str) or not isinstance(sig, str) or not isinstance(ts, (int, str)) or isinstance(ts, bool):
            raise ApiError(400, MANDATORY_PARAM, "LOGIN params: apiKey (hex), timestamp (ms), signature (base64).")
        public_key = parse_api_key(key)
        timestamp_ms = check_timestamp(str(ts), None if window is None else str(window))
        check_signature(public_key, sig, signed_payload(timestamp_ms, "GET", "/ws", "", b""))
        account = account_id(public_key)
        if conn.account is not None and conn.account != account and "user" in conn.streams:
            conn.streams.discard("user")
            self._unsubscribe_one(conn, "user")
        if len(conn.streams | {"user"}) > STREAMS_PER_CONNECTION_MAX:
            raise ApiError(400, TOO_MANY_REQUESTS, f"Too many streams: at most {STREAMS_PER_CONNECTION_MAX} per connection.")
        conn.account = account
        if "user" not in conn.streams:
            self._subscribe_one(conn, "user")
        return account

    async def _poll_cluster(self) -> None:
        """While anyone subscribes to `cluster`: poll the status, push changes."""
        loop = asyncio.get_running_loop()
        last_key, last_push = None, 0.0
        try:
            while self.subs.get("cluster"):
                try:
                    doc = await nodes_status(self.node)
                except Exception:
                    log.exception("cluster status for the stream failed")
                    await asyncio.sleep(CLUSTER_POLL_S)
                    continue
                key = (doc["leader"], doc["term"], tuple((n.get("id"), n.get("role"), n.get("reachable")) for n in doc["nodes"]))
                now = loop.time()
                if key != last_key or now - last_push >= CLUSTER_HEADS_S:
                    self.cluster_doc = {"e": "cluster", "E": _now_ms(), **doc}
                    text = _text("cluster", self.cluster_doc)
                    for conn in list(self.subs.get("cluster", ())):
                        self.put(conn, text)
                    last_key, last_push = key, now
                await asyncio.sleep(CLUSTER_POLL_S)
        finally:
            self._cluster_task = None
            self.cluster_doc = None


_EXECUTION = {OrderAccepted: "NEW", OrderCancelled: "CANCELED", OrderExpired: "EXPIRED", OrderAmended: "AMENDMENT"}


def _accounts(ev) -> tuple:
    if ev.__class__ is Trade:
        return (ev.maker_account, ev.taker_account)
    return (ev.account,)


def _orders(ev) -> tuple:
    """(order id, account) pairs an event is about."""
    if ev.__class__ is Trade:
        return ((ev.maker_order_id, ev.maker_account), (ev.taker_order_id, ev.taker_account))
    if ev.__class__ in _EXECUTION:
        return ((ev.order_id, ev.account),)
    return ()


def _kline(m, c: list, final: bool, now: int) -> dict:
    return {
        "e": "kline", "E": now, "s": m.symbol,
        "k": {
            "t": c[0], "T": c[0] + KLINE_STEP_MS - 1, "s": m.symbol, "i": KLINE_INTERVAL,
            "o": render.price(m, c[1]), "c": render.price(m, c[4]), "h": render.price(m, c[2]), "l": render.price(m, c[3]),
            "v": render.qty(m, c[5]), "q": render.quote(m, c[6]), "n": c[7], "x": final,
        },
    }


# ----------------------------------------------------------------- the route


async def _handle(hub: Hub, conn: Conn, raw) -> None:
    """One inbound frame: a request, answered on conn's queue in order."""
    if not isinstance(raw, str):
        hub.put(conn, _error(MANDATORY_PARAM, "Send JSON text frames."))
        return
    if len(raw) > FRAME_BYTES_MAX:
        hub.put(conn, _error(MANDATORY_PARAM, f"Frame too large: at most {FRAME_BYTES_MAX} bytes."))
        return
    if conn.inbound.take(0) > 0:
        hub.put(conn, _error(TOO_MANY_REQUESTS, f"Too many messages: at most {INBOUND_PER_S} per second."))
        return
    try:
        request = json.loads(raw)
    except ValueError:
        hub.put(conn, _error(MANDATORY_PARAM, "Malformed JSON."))
        return
    if not isinstance(request, dict):
        hub.put(conn, _error(MANDATORY_PARAM, 'A request is an object: {"method", "params", "id"}.'))
        return
    request_id = request.get("id")
    if not (request_id is None or isinstance(request_id, (str, int))) or isinstance(request_id, bool):
        request_id = None
    method = request.get("method")
    try:
        if method == "SUBSCRIBE":
            names = hub.check_subscribe(conn, request.get("params"))
            hub.put(conn, _reply(None, request_id))  # before the snapshots it queues
            hub.subscribe(conn, names)
        elif method == "UNSUBSCRIBE":
            hub.unsubscribe(conn, request.get("params"))
            hub.put(conn, _reply(None, request_id))
        elif method == "LIST_SUBSCRIPTIONS":
            hub.put(conn, _reply(sorted(conn.streams), request_id))
        elif method == "LOGIN":
            account = hub.login(conn, request.get("params"))
            hub.put(conn, _reply({"account": str(account)}, request_id))
        else:
            raise ApiError(400, MANDATORY_PARAM, "Unknown method: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS or LOGIN.")
    except ApiError as e:
        hub.put(conn, _error(e.code, e.msg, request_id))


@router.websocket("/ws")
async def streams(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    if len(hub.conns) >= CONNECTIONS_PER_NODE_MAX:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, f"too many connections: at most {CONNECTIONS_PER_NODE_MAX} per node")
        return
    conn = Conn(websocket, hub.queue_max)
    hub.conns.add(conn)
    conn.sender = asyncio.get_running_loop().create_task(conn.send_loop())
    done = asyncio.ensure_future(conn.done.wait())
    try:
        while True:
            receive = asyncio.ensure_future(websocket.receive())
            await asyncio.wait((receive, done), return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                break
            await _handle(hub, conn, message.get("text") if message.get("text") is not None else message.get("bytes"))
    finally:
        done.cancel()
        hub.forget(conn)
        if conn.sender is not None:
            conn.sender.cancel()
