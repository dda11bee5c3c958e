"""What every stream shares: the bounds, JSON text frames, cached price and
quantity rendering, and one connection with its outbound queue."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from fastapi import WebSocket

from dex.api import render
from dex.api.market import DEPTH_LIMIT_MAX, INTERVALS_MS
from dex.api.ratelimit import TokenBuckets

WS_PING_INTERVAL_S = 20.0  # uvicorn pings every connection this often...
WS_PING_TIMEOUT_S = 20.0  # ...and closes one that has not answered within this
STREAMS_PER_CONNECTION_MAX = 64
# One source address (or one account's user streams) holds at most this many
# of a node's connections, so no single client can take the node's whole cap;
# the cap is large enough that idle sockets from many addresses cannot fill it
# either (2,048 / 16 = 128 addresses; an idle connection costs ~50 KiB).
CONNECTIONS_PER_NODE_MAX = 2048
CONNECTIONS_PER_ADDRESS_MAX = 16
USER_STREAMS_PER_ACCOUNT_MAX = 8
# Text queued for one connection and not yet handed to the socket: above
# this the connection is closed (slow consumer). Bytes, not messages: one
# depth snapshot is ~39 KB, one trade message ~200 bytes.
OUTBOUND_QUEUE_BYTES_MAX = 1024 * 1024
CHALLENGE_BYTES = 16  # the per-connection random a LOGIN signs
FRAME_BYTES_MAX = 8 * 1024  # a larger inbound frame is answered with an error
WS_FRAME_BYTES_CLOSE = 64 * 1024  # at least this: uvicorn closes a connection (1009) above max(this, the forward channel's 80 KiB frames; dex/node.py)
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
assert 0 < CONNECTIONS_PER_ADDRESS_MAX < CONNECTIONS_PER_NODE_MAX
assert 0 < USER_STREAMS_PER_ACCOUNT_MAX <= CONNECTIONS_PER_ADDRESS_MAX
assert OUTBOUND_QUEUE_BYTES_MAX >= 16 * FRAME_BYTES_MAX  # a few snapshots fit
assert WS_PING_TIMEOUT_S <= WS_PING_INTERVAL_S

DEPTH, OTHER = 0, 1  # kinds of message: a depth diff is rewritten per connection


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps with options builds an encoder per call


def text(stream: str, data: dict) -> str:
    return _encode({"stream": stream, "data": data})


def reply(result, request_id) -> str:
    return _encode({"result": result, "id": request_id})


def error(code: int, msg: str, request_id=None) -> str:
    return _encode({"error": {"code": code, "msg": msg}, "id": request_id})


class Formats:
    """render.price / render.qty of one market, remembered: the same prices
    and sizes come back block after block, and rendering goes through Decimal.
    Raft thread only; at most FORMATS_CACHED_MAX of each (then it starts over)."""

    __slots__ = ("market", "prices", "qtys")

    def __init__(self, market) -> None:
        self.market = market
        self.prices: dict[int, str] = {}
        self.qtys: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        found = self.prices.get(ticks)
        if found is None:
            if len(self.prices) >= FORMATS_CACHED_MAX:
                self.prices.clear()
            found = self.prices[ticks] = render.price(self.market, ticks)
        return found

    def qty(self, lots: int) -> str:
        found = self.qtys.get(lots)
        if found is None:
            if len(self.qtys) >= FORMATS_CACHED_MAX:
                self.qtys.clear()
            found = self.qtys[lots] = render.qty(self.market, lots)
        return found


class Conn:
    """One WebSocket connection: its subscriptions, its outbound queue (at
    most `queue_max` messages and OUTBOUND_QUEUE_BYTES_MAX bytes: the hub
    checks both in `put`) and the challenge its LOGIN must sign."""

    def __init__(self, ws: WebSocket, queue_max: int, address: str = "") -> None:
        self.ws = ws
        self.address = address  # the peer's IP address ("" if unknown)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_max)
        self.queued_bytes = 0  # the texts in `queue` (JSON is ASCII: characters are bytes)
        self.challenge = secrets.token_hex(CHALLENGE_BYTES)
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
                message = await self.queue.get()
                self.queued_bytes -= len(message)
                await self.ws.send_text(message)
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
