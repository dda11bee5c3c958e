"""The stream hub: every WebSocket connection of this node and its
subscriptions, and the Raft-thread side that turns each applied block into
messages for them.

Two threads meet here. The Raft thread calls `Hub.on_block` right after each
block is applied (dex/node.py registers it): one pass over the block's events
sorts them for the feeds (levels touched, orders that may rest, trades by
market, events of accounts with a user stream); then, under the ledger
port's lock (`port.view()`), the depth feed settles its index of resting
orders and reads the touched levels' totals, and the user feed reads the
touched accounts' balances and orders; each feed renders its messages once
as JSON text (depth.py, trades.py, cluster.py, user.py) and the lot goes to
the event loop with `call_soon_threadsafe`. The event loop fans the texts
out to the connections that subscribed; nothing on the Raft thread waits for
a client.

Bounds: STREAMS_PER_CONNECTION_MAX, CONNECTIONS_PER_NODE_MAX and
CONNECTIONS_PER_ADDRESS_MAX (so one address cannot take the node's whole
cap), USER_STREAMS_PER_ACCOUNT_MAX, FRAME_BYTES_MAX, INBOUND_PER_S
(dex/api/streams/wire.py), and an outbound queue of at most
`stream_queue_max` (cluster config, default 4,096) messages and
OUTBOUND_QUEUE_BYTES_MAX bytes per connection: a connection over either is
closed 1008 "slow consumer", never buffered without bound.

Depth snapshots are rendered once per (market, applied height) and the text
shared by every subscription made at that height: a flood of re-SUBSCRIBEs
costs a lock and a dictionary read each, not a render of the book.

A node nobody is connected to stops following blocks: once it has had no
connection for `idle_s` (DETACH_IDLE_S) the Raft thread returns from
`on_block` at once, and the next connection re-reads the book before it is
counted in (`admit`, under the hub's lock, so no block falls between). The
depth index and the candles are what following costs (~2.7 µs of the Raft
thread an order, bench/read_model.py), and a node behind a load balancer or
in a benchmark may have no stream client at all. The idle delay bounds what
connecting and disconnecting in a loop can cost: one re-read of the book
per `idle_s`.

LOGIN signs the connection's server-chosen challenge (sent by CHALLENGE), so
a LOGIN captured on one connection is worthless on another; its recvWindow,
if any, is signed too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from dex.api.deps import check_signature, check_timestamp, parse_api_key
from dex.api.errors import INVALID_TIMESTAMP, MANDATORY_PARAM, TOO_MANY_REQUESTS, UNAUTHORIZED, ApiError
from dex.api.streams.cluster import ClusterFeed, block_message
from dex.api.streams.depth import DepthFeed, SnapshotCache
from dex.api.streams.trades import TradesFeed
from dex.api.streams.user import UserFeed
from dex.api.streams.wire import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CONNECTIONS_PER_ADDRESS_MAX,
    CONNECTIONS_PER_NODE_MAX,
    DEPTH,
    KLINE_INTERVAL,
    OUTBOUND_QUEUE_BYTES_MAX,
    STREAMS_PER_CONNECTION_MAX,
    USER_STREAMS_PER_ACCOUNT_MAX,
    Conn,
    Formats,
    now_ms,
    text,
)
from dex.auth import account_id, signed_payload
from dex.core.events import OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, Trade
from dex.core.reasons import Reason
from dex.core.types import OrderType, Side

log = logging.getLogger("dex.api.streams")

SELL = Side.SELL
DETACH_IDLE_S = 10.0  # no connection for this long: stop following blocks (above)


class Hub:
    """Every connection of this node, and the Raft-thread side that feeds them."""

    def __init__(self, node) -> None:
        self.node = node  # reads node.cfg, node.port, node.history, node.loop, node.node_id
        self.markets = {m.symbol: m for m in node.cfg.markets.markets}
        self.by_stream_symbol = {m.symbol.lower(): m for m in node.cfg.markets.markets}
        self.assets = {a.name: a for a in node.cfg.markets.assets}
        self.queue_max = node.cfg.stream_queue_max
        # Event-loop state (read, never written, by the Raft thread).
        self.conns: set[Conn] = set()
        self.subs: dict[str, set[Conn]] = {}  # stream -> connections
        self.users: dict[int, set[Conn]] = {}  # account -> connections with the `user` stream
        self.by_address: dict[str, int] = {}  # source address -> its open connections
        self.slow_closed = 0
        self.unexpected: dict[str, int] = {}  # exception class -> frames it failed (route.py logs the first)
        self.snapshots = SnapshotCache(node.port, self.markets)
        self.cluster = ClusterFeed(self)
        # Raft-thread state (under _lock).
        self._lock = threading.Lock()
        self._ready = False
        self._height = 0
        self._following = True  # False: blocks are not followed (no connection for idle_s)
        self.idle_s = DETACH_IDLE_S
        self._idle_since: float | None = time.monotonic()  # when the last connection left; None while one is open
        self.detached = 0  # times it stopped following
        formats = {symbol: Formats(m) for symbol, m in self.markets.items()}
        self.depth = DepthFeed(self.markets, formats)
        self.trades = TradesFeed(self.markets, formats, node.history)
        self.user = UserFeed(self.markets, self.assets, formats, node.history)

    # ------------------------------------------------------ Raft thread

    def attach(self) -> None:
        """Start following blocks (once, at start-up; the node registered
        `on_block`): index the book as it stands."""
        with self._lock:
            with self.node.port.view() as view:
                self.depth.start(view)
                self._height = view.height
            self._ready = True

    def on_block(self, header, block_hash, proposal, results) -> None:
        with self._lock:
            if not self._ready or header.height <= self._height or not self._following:
                return  # before attach, replayed, or nobody to follow for
            idle_since = self._idle_since  # written on the event loop: a stale read only detaches a block later
            if idle_since is not None and not self.conns and time.monotonic() - idle_since >= self.idle_s:
                self._following = False  # admit() takes it up again, under this lock
                self.depth.resting = {}
                self.trades.forget()
                self.detached += 1
                return
            resync = header.height != self._height + 1  # a snapshot was loaded: blocks went by unseen
            self._height = header.height
            loop = self.node.loop
            building = loop is not None and bool(self.conns)
            messages, user_messages = self._block(header, block_hash, proposal, results, resync, building)
        if building:
            loop.call_soon_threadsafe(self._dispatch, resync, messages, user_messages)

    def _block(self, header, block_hash, proposal, results, resync, building):
        users = self.users
        subs = self.subs
        touched, seen, trades, mine = self._sort(results)
        levels: dict[str, tuple[list, list]] = {}
        balances: dict = {}
        views: dict = {}
        with self.node.port.view() as view:
            if resync:
                self.depth.index(view)
            self.depth.settle(view, seen, touched)
            if building:
                for symbol, prices in touched.items():
                    levels[symbol] = view.level_totals(symbol, prices)
                if mine:
                    balances, views = self.user.read(view, mine, users)
        previous = self.depth.advance(header.height, touched)
        candles_changed = self.trades.fold(header, trades, subs)
        if not building:
            return None, None
        now = now_ms()
        messages = self.depth.messages(header.height, levels, previous, subs, now)  # (kind, stream, text, extra)
        messages += self.trades.messages(header, trades, candles_changed, subs, now)
        if "blocks" in subs:  # last: a client that sees block h has every other message of h
            messages.append(block_message(header, block_hash, proposal, sum(len(f) for f in trades.values()), now))
        user_messages = self.user.messages(header, mine, users, balances, views, now) if mine else []
        return messages, user_messages

    def _sort(self, results) -> tuple[dict, dict, dict, list]:
        """One pass over a block's events: (touched levels by symbol, orders
        that may rest after it by id -> account, trades by symbol, events of
        accounts with a user stream). Keeps the depth feed's index of resting
        orders up for cancels and expiries, whose events carry no price."""
        users = self.users
        watched = bool(users)
        resting = self.depth.resting
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
        return touched, seen, trades, mine

    # ------------------------------------------------------- event loop

    def _dispatch(self, resync: bool, messages: list, user_messages: list) -> None:
        if resync:
            for stream, conns in list(self.subs.items()):
                if stream.endswith("@depth"):
                    for conn in list(conns):
                        self._snapshot(conn, self.by_stream_symbol[stream.split("@")[0]].symbol)
        for account, message in user_messages:
            for conn in list(self.users.get(account, ())):
                self.put(conn, message)
        for kind, stream, message, extra in messages:
            conns = self.subs.get(stream)
            if not conns:
                continue
            if kind == DEPTH:
                symbol, data = extra
                for conn in list(conns):
                    last = conn.depth_last.get(symbol)
                    if last is None or data["u"] <= last:
                        continue
                    conn.depth_last[symbol] = data["u"]
                    if data["U"] != last + 1:  # the first event after the snapshot
                        self.put(conn, text(stream, {**data, "U": last + 1}))
                    else:
                        self.put(conn, message)
            else:
                for conn in list(conns):
                    self.put(conn, message)

    def put(self, conn: Conn, message: str) -> None:
        if conn.closed:
            return
        if conn.queued_bytes + len(message) > OUTBOUND_QUEUE_BYTES_MAX:
            self._slow(conn, f"slow consumer: {conn.queued_bytes} bytes queued, the limit is {OUTBOUND_QUEUE_BYTES_MAX}")
            return
        try:
            conn.queue.put_nowait(message)
        except asyncio.QueueFull:
            self._slow(conn, f"slow consumer: {conn.queue.qsize()} messages queued, the limit")
            return
        conn.queued_bytes += len(message)
        assert conn.queued_bytes <= OUTBOUND_QUEUE_BYTES_MAX

    def _slow(self, conn: Conn, reason: str) -> None:
        self.slow_closed += 1
        log.warning("closing a stream consumer at %s: %s", conn.address, reason)
        self.drop(conn, CLOSE_POLICY_VIOLATION, reason)

    def admit(self, conn: Conn) -> str | None:
        """Count a new connection in, or the reason it is refused (a cap is full)."""
        if len(self.conns) >= CONNECTIONS_PER_NODE_MAX:
            return f"too many connections: at most {CONNECTIONS_PER_NODE_MAX} per node"
        held = self.by_address.get(conn.address, 0)
        if held >= CONNECTIONS_PER_ADDRESS_MAX:
            return f"too many connections: at most {CONNECTIONS_PER_ADDRESS_MAX} per source address"
        self.by_address[conn.address] = held + 1
        with self._lock:  # the Raft thread decides to stop following under it, seeing `conns`
            if not self._following:
                with self.node.port.view() as view:  # the book as of the last applied block
                    self.depth.start(view)
                    self._height = view.height
                self._following = True
            self.conns.add(conn)
            self._idle_since = None
        return None

    def drop(self, conn: Conn, code: int, reason: str) -> None:
        """Stop sending to `conn` at once and close it in the background."""
        if conn.closed:
            return
        self.forget(conn)
        if conn.sender is not None:
            conn.sender.cancel()
        asyncio.get_running_loop().create_task(conn.close(code, reason))

    def forget(self, conn: Conn) -> None:
        """Stop serving conn (it may have been refused, or forgotten already)."""
        if conn in self.conns:
            self.conns.discard(conn)
            if not self.conns:
                self._idle_since = time.monotonic()
            held = self.by_address[conn.address] - 1
            assert held >= 0
            if held:
                self.by_address[conn.address] = held
            else:
                del self.by_address[conn.address]
        conn.closed = True
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
        height, message = self.snapshots.get(symbol)
        conn.depth_last[symbol] = height
        self.put(conn, message)

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
        if "user" in names and "user" not in conn.streams and len(self.users.get(conn.account, ())) >= USER_STREAMS_PER_ACCOUNT_MAX:
            raise ApiError(400, TOO_MANY_REQUESTS, f"Too many user streams: at most {USER_STREAMS_PER_ACCOUNT_MAX} per account.")
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
            self.cluster.subscribed(conn)

    def unsubscribe(self, conn: Conn, params) -> None:
        if not isinstance(params, list) or not params:
            raise ApiError(400, MANDATORY_PARAM, "params must be a non-empty list of stream names.")
        for name in [self._stream_name(p) for p in params]:
            if name in conn.streams:
                conn.streams.discard(name)
                self._unsubscribe_one(conn, name)

    def login(self, conn: Conn, params) -> int | None:
        """Log conn in to the account whose key signed
        `<timestamp>GET/ws?challenge=<conn.challenge>` (with
        `&recvWindow=<ms>` when the LOGIN has one) and subscribe it to the
        user stream: the account, ApiError, or None when the account already
        has USER_STREAMS_PER_ACCOUNT_MAX user streams on this node (conn is
        then closed, try again later)."""
        if not isinstance(params, dict):
            raise ApiError(400, MANDATORY_PARAM, "LOGIN params: {apiKey, timestamp, signature}.")
        key, ts, sig = params.get("apiKey"), params.get("timestamp"), params.get("signature")
        window = params.get("recvWindow")
        if not isinstance(key, str) or not isinstance(sig, str):
            raise ApiError(400, MANDATORY_PARAM, "LOGIN params: apiKey (hex), timestamp (ms), signature (base64), after CHALLENGE.")
        timestamp = _decimal_digits(ts)
        if timestamp is None:
            raise ApiError(400, INVALID_TIMESTAMP, "Timestamp for this request is not valid.")
        recv_window = None if window is None else _decimal_digits(window)
        if window is not None and recv_window is None:
            raise ApiError(400, MANDATORY_PARAM, "recvWindow must be a whole number of ms.")
        public_key = parse_api_key(key)
        timestamp_ms = check_timestamp(timestamp, recv_window)
        query = f"challenge={conn.challenge}" + ("" if recv_window is None else f"&recvWindow={recv_window}")
        check_signature(public_key, sig, signed_payload(timestamp_ms, "GET", "/ws", query, b""))
        account = account_id(public_key)
        if conn.account != account and len(self.users.get(account, ())) >= USER_STREAMS_PER_ACCOUNT_MAX:
            self.drop(conn, CLOSE_TRY_AGAIN_LATER, f"too many user streams: at most {USER_STREAMS_PER_ACCOUNT_MAX} per account")
            return None
        if conn.account is not None and conn.account != account and "user" in conn.streams:
            conn.streams.discard("user")
            self._unsubscribe_one(conn, "user")
        if len(conn.streams | {"user"}) > STREAMS_PER_CONNECTION_MAX:
            raise ApiError(400, TOO_MANY_REQUESTS, f"Too many streams: at most {STREAMS_PER_CONNECTION_MAX} per connection.")
        conn.account = account
        if "user" not in conn.streams:
            self._subscribe_one(conn, "user")
        return account


_DIGITS_MAX = 15  # a ms timestamp or window: longer is refused before int()


def _decimal_digits(value) -> str | None:
    """`value` (an int, or a string of ASCII digits) as ASCII digits, or
    None. str.isdigit() alone lets '²' through to int(), which then fails."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value < 10**_DIGITS_MAX else None
    if isinstance(value, str) and 0 < len(value) <= _DIGITS_MAX and value.isascii() and value.isdigit():
        return value
    return None
