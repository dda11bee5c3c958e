"""A Python client for dex, sync and asyncio: signs requests, retries safely,
moves between nodes, and keeps a local order book from the depth stream.

    from dex.auth import Keypair
    from dex.client import AsyncClient, Client

    c = Client(["http://127.0.0.1:8101", "http://127.0.0.1:8102"], Keypair.generate())
    c.deposit("USDT", "10000")
    c.place_order("BTCUSDT", "BUY", "LIMIT", price="50000", quantity="0.01")

    async with AsyncClient(urls, keys) as a:
        await a.place_order("BTCUSDT", "SELL", price="51000", quantity="0.01")
        async for book in a.stream_book("BTCUSDT"):
            print(book.bids(5), book.asks(5))

Every new order carries a client order id, and every deposit and withdrawal
a client transfer id (one is made if you pass none), so a retry after a
timeout, a 503 or a dead node returns the original outcome instead of placing
a second order or moving funds twice. Errors from the exchange raise `DexError`
with its `code` and `msg`, as the subclass the code names (InsufficientBalance,
OrderRejected, UnknownOrder, BadParameter, RateLimited, OutcomeUnknown,
Disconnected); `error_of` does the same for a batch_orders entry. Prices,
quantities and amounts are plain decimal strings or Decimal, never floats
(TypeError) nor exponent strings such as "1e-3" (BadParameter -1100, as the
API answers); `MarketRules` rounds a number to a market's tick and step;
symbols may be in any case; `load_key` reads a `dex keys new` key file.

How the two transports share one policy: each endpoint builds a
`RequestSpec` (in `_Endpoints`, written once); `_attempts(spec)` is a
sans-IO generator that yields the next `_Send` (URL, body, freshly signed
headers) or `_Sleep`, is sent back the response or the transport error, and
returns the decoded answer or raises `DexError`. `Client` drives it with
httpx.Client and time.sleep, `AsyncClient` with httpx.AsyncClient and
asyncio.sleep. Retries are bounded (`retries` attempts); a connection
failure or timeout moves to the next node at once, a 503 every second try.
A request marked retry=False is sent again only after an outcome that proves
it did not execute: a connection that could not be made, 429, or a 503 with
-1001 (not sent to a leader) or -1008 (not queued). The wait before a retry
doubles from BACKOFF_S to BACKOFF_MAX_S and is at least what the node asks
for: `X-DEX-SHED-MS` on a -1008 (milliseconds until it admits again), else
`Retry-After` (whole seconds, as any HTTP client reads it). After -1007 or a timeout
(outcome unknown) it is not re-sent: the caller gets the error and must look
before trying again.

`BookKeeper` (from `AsyncClient.stream_book`, or `Client.stream_book`, which
runs it on a private event loop for blocking code) subscribes to `<symbol>@depth`
over WebSocket and feeds a `dex.client_book.LocalBook`; on a gap it
resubscribes for a fresh snapshot, on a dead connection it reconnects to the
next node. The book is only yielded while it is in sync.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from urllib.parse import urlencode

import httpx

from dex import keyfile as _keyfile
from dex.auth import Keypair
from dex.client_book import GapDetected, LocalBook
from dex.core.markets import DECIMAL_TEXT_LENGTH_MAX, plain_decimal_problem

RETRIES_MAX = 8
BACKOFF_S = 0.1
BACKOFF_MAX_S = 1.0
TIMEOUT_S_DEFAULT = 10.0
TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.TimeoutException)
NO_NODE = -1001  # the API's DISCONNECTED: what the client reports when no node answered
OUTCOME_UNKNOWN = -1007  # the API's TIMEOUT: the request may or may not have executed
# Transport errors that prove the request was never written: a non-idempotent
# request may go to the next node after one of these.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# 503 codes whose request provably did not execute (docs/CLUSTER.md): no
# leader or the connection to it refused (-1001), not queued (-1008).
NOT_EXECUTED_CODES = (-1001, -1008)
OVERLOADED = -1008
SHED_MS_HEADER = "X-DEX-SHED-MS"  # on a -1008: ms until the node admits again (dex.api.errors)

# Streams (docs/STREAMS.md)
WS_PATH = "/ws"
WS_CONNECT_TIMEOUT_S = 5.0
WS_ANSWER_TIMEOUT_S = 5.0  # for the answer to a SUBSCRIBE
WS_FRAME_BYTES_MAX = 4 * 1024 * 1024  # a snapshot of 2 x 1,000 levels is ~60 KiB
WS_RECONNECTS_MAX = 32  # in a row without reaching a snapshot; then the keeper gives up
WS_RECONNECT_BACKOFF_MAX_S = 2.0
assert WS_RECONNECT_BACKOFF_MAX_S >= BACKOFF_S


class DexError(Exception):
    """An error answer from the exchange, or no answer: `status` (HTTP),
    `code` and `msg` as the API sent them.

    Constructing DexError(status, code, msg) gives the subclass its code
    names (InsufficientBalance, RateLimited, ...), so every place that raises
    one, the retry policy included, raises the typed error without knowing
    the table; `except DexError` still catches them all."""

    def __new__(cls, status: int = 0, code: int = 0, msg: str = "", *rest):
        if cls is DexError:
            cls = _error_class(code, msg)
        return super().__new__(cls, status, code, msg, *rest)

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg} (HTTP {status})")
        self.status = status
        self.code = code
        self.msg = msg

    def __reduce__(self):
        return (DexError, (self.status, self.code, self.msg))


class Disconnected(DexError):
    """-1001: no node answered (or the depth stream could not reach one)."""


class RateLimited(DexError):
    """-1003: over the account's rate limit on that node; the client already waited and retried."""


class OutcomeUnknown(DexError):
    """-1007: the request may or may not have been applied (e.g. the leader
    changed while it was in flight). Retrying an order with the same client
    order id is safe: it returns the original outcome."""


class BadParameter(DexError):
    """-1100..-1199: a parameter is missing, malformed or not allowed (-1121: no such symbol)."""


class OrderRejected(DexError):
    """-2010: the exchange refused the new order (the book is full, a post-only would take...)."""


class InsufficientBalance(DexError):
    """-2010 with an insufficient-balance reason, or -4026 (a withdrawal): not enough free funds."""


class UnknownOrder(DexError):
    """-2013: no such order for this account (never placed, or no longer open)."""


BAD_PARAMETER_CODES = range(-1199, -1099)  # the -11xx family
ILLEGAL_CHARS = -1100  # a malformed parameter, e.g. a number not written as a plain decimal
INSUFFICIENT_BALANCE_TEXT = "insufficient balance"  # in the msg of the -2010s that mean it (dex/core/reasons.py)
_ERRORS_BY_CODE: dict[int, type[DexError]] = {
    -1001: Disconnected,
    -1003: RateLimited,
    -1007: OutcomeUnknown,
    -2013: UnknownOrder,
    -4026: InsufficientBalance,
}


def _error_class(code: int, msg: str) -> type[DexError]:
    if code == -2010:
        return InsufficientBalance if INSUFFICIENT_BALANCE_TEXT in str(msg).lower() else OrderRejected
    if code in BAD_PARAMETER_CODES:
        return BadParameter
    return _ERRORS_BY_CODE.get(code, DexError)


def error_of(entry: dict) -> DexError | None:
    """A batch_orders entry's error as a typed DexError, or None if that order was accepted.

        results = c.batch_orders(orders)
        problems = [(o, e) for o, e in zip(orders, map(error_of, results)) if e is not None]
    """
    if "code" in entry and "orderId" not in entry:
        return DexError(400, int(entry["code"]), str(entry.get("msg", "")))
    return None


def load_key(path) -> Keypair:
    """The key pair in a key file written by `dex keys new` (raises dex.keyfile.KeyFileError)."""
    return _keyfile.load_key(path)


def decimal_text(name: str, value: str | Decimal | int) -> str:
    """A price, quantity or amount as the API's decimal string. A float is
    refused (TypeError): 0.1 is not one tenth in binary, and a price off by
    one ulp is rejected by PRICE_FILTER; pass "0.1" or Decimal("0.1"), or
    round with MarketRules first. A string must be a plain decimal, as the
    API demands: "1e-3" raises BadParameter -1100 with the API's own message
    (write "0.001"), before anything is sent. A Decimal is exact, so
    Decimal("1E-3") is sent as "0.001"."""
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a decimal string or Decimal, not {type(value).__name__} {value!r} "
                        f"(binary floats are inexact): pass {name}={str(value)!r} or Decimal({str(value)!r}), "
                        f"or round it with MarketRules")
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        exact = value.is_finite() and abs(exponent) <= DECIMAL_TEXT_LENGTH_MAX and value.adjusted() < DECIMAL_TEXT_LENGTH_MAX
        text = format(value, "f") if exact else str(value)  # never "1E-3"; a huge exponent is not expanded
    elif isinstance(value, int):
        text = str(value)
    else:
        assert isinstance(value, str), f"{name}: a decimal string, got {type(value).__name__}"
        text = value
    problem = plain_decimal_problem(name, text)
    if problem is not None:
        raise BadParameter(400, ILLEGAL_CHARS, problem)
    return text


@dataclass(frozen=True, slots=True)
class MarketRules:
    """A market's tick, step and bounds from exchangeInfo, to make a price or
    a quantity the exchange accepts (it rejects, never rounds):

        rules = MarketRules.from_exchange_info(c.exchange_info(), "BTCUSDT")
        c.place_order("BTCUSDT", "BUY", price=rules.price(mid * Decimal("0.99")), quantity=rules.quantity("0.0123456"))

    price() rounds to the nearest tick (half even) unless told otherwise
    (ROUND_DOWN for a bid that must not pay more, ROUND_UP for an ask);
    quantity() rounds down so that an order never asks for more than meant.
    Both return strings; a float given here is read by its shortest repr."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal

    @classmethod
    def from_exchange_info(cls, info: dict, symbol: str) -> MarketRules:
        wanted = market(symbol)
        found = [m for m in info["symbols"] if m["symbol"] == wanted]
        if not found:
            raise BadParameter(400, -1121, f"Invalid symbol: {symbol!r} is not in exchangeInfo")
        filters = {f["filterType"]: f for f in found[0]["filters"]}
        price, lot, notional = filters["PRICE_FILTER"], filters["LOT_SIZE"], filters["NOTIONAL"]
        rules = cls(wanted, Decimal(price["tickSize"]), Decimal(lot["stepSize"]), Decimal(lot["minQty"]), Decimal(lot["maxQty"]),
                    Decimal(price["minPrice"]), Decimal(price["maxPrice"]), Decimal(notional["minNotional"]))
        assert rules.tick_size > 0 and rules.step_size > 0
        return rules

    def price(self, value: str | Decimal | int | float, rounding: str = ROUND_HALF_EVEN) -> str:
        return _to_step(_decimal(value), self.tick_size, rounding)

    def quantity(self, value: str | Decimal | int | float, rounding: str = ROUND_DOWN) -> str:
        return _to_step(_decimal(value), self.step_size, rounding)


def _decimal(value: str | Decimal | int | float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _to_step(value: Decimal, step: Decimal, rounding: str) -> str:
    steps = (value / step).to_integral_value(rounding=rounding)
    return format((steps * step).quantize(step), "f")


def market(symbol: str | None) -> str | None:
    """A market symbol as the exchange spells it (upper case): "btcusdt" works too."""
    return None if symbol is None else symbol.upper()


def _market_of(order: dict) -> dict:
    """A batch entry's symbol upper-cased and its numbers as decimal strings (floats refused)."""
    fixed = {k: decimal_text(k, order[k]) for k in ("price", "quantity", "quoteOrderQty") if order.get(k) is not None}
    if isinstance(order.get("symbol"), str):
        fixed["symbol"] = market(order["symbol"])
    return fixed


def new_client_order_id() -> str:
    return "c-" + secrets.token_hex(12)


def new_client_transfer_id() -> str:
    return "t-" + secrets.token_hex(12)


# ---------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One API call, before any node, time or signature is chosen."""

    method: str
    path: str
    params: dict | None = None
    body: dict | None = None
    signed: bool = False
    retry: bool = True  # only for requests a retry cannot duplicate

    @property
    def query(self) -> str:
        return urlencode({k: v for k, v in (self.params or {}).items() if v is not None})

    @property
    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class _Send:
    method: str
    url: str
    content: bytes | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


class _Nodes:
    """The node list, the one in use, keys and retry policy: shared by both transports."""

    def __init__(self, urls: list[str] | str, keys: Keypair | None, retries: int) -> None:
        self.urls = [urls] if isinstance(urls, str) else [u.rstrip("/") for u in urls]
        assert self.urls, "at least one node URL"
        assert retries >= 1
        self.keys = keys
        self.retries = retries
        self.on_retry = None  # called with one line of text before each retry (a CLI's progress)
        self._current = 0

    @property
    def url(self) -> str:
        return self.urls[self._current]

    def rotate(self) -> None:
        self._current = (self._current + 1) % len(self.urls)

    def _send(self, spec: RequestSpec, query: str, raw: bytes) -> _Send:
        headers = {"Content-Type": "application/json"} if spec.body is not None else {}
        if spec.signed:
            assert self.keys is not None, "a signed request needs keys"
            # Signed afresh for every attempt: a retry must fall inside recvWindow too.
            headers.update(self.keys.headers(time.time_ns() // 1_000_000, spec.method, spec.path, query, raw))
        url = f"{self.url}{spec.path}" + (f"?{query}" if query else "")
        return _Send(spec.method, url, raw or None, headers)

    def _attempts(self, spec: RequestSpec) -> Generator[_Send | _Sleep, httpx.Response | Exception | None, object]:
        """The retry and failover policy, free of IO (see the module docstring)."""
        query, raw = spec.query, spec.content
        attempts = self.retries
        delay = BACKOFF_S
        last: Exception | None = None
        for attempt in range(attempts):
            outcome = yield self._send(spec, query, raw)
            if isinstance(outcome, Exception):
                last = outcome
                self.rotate()
                # A refused connection never carried the request: even a
                # non-idempotent one may go to the next node.
                if not spec.retry and not isinstance(outcome, NEVER_SENT):
                    break
            else:
                assert isinstance(outcome, httpx.Response)
                if outcome.status_code not in (429, 503):
                    if outcome.status_code >= 400:
                        payload = _json(outcome)
                        raise DexError(outcome.status_code, payload.get("code", 0), payload.get("msg", outcome.text))
                    return outcome.json()
                payload = _json(outcome)
                last = DexError(outcome.status_code, payload.get("code", 0), payload.get("msg", outcome.text))
                asked = asked_wait_s(payload.get("code"), outcome.headers.get(SHED_MS_HEADER), outcome.headers.get("Retry-After"))
                if asked is not None:
                    delay = max(delay, asked)
                if outcome.status_code == 503 and len(self.urls) > 1 and attempt % 2:
                    self.rotate()
                if not spec.retry and not (outcome.status_code == 429 or payload.get("code") in NOT_EXECUTED_CODES):
                    break  # it may have executed (-1007): sending it again could execute it twice
            if attempt + 1 < attempts:
                if self.on_retry is not None:
                    self.on_retry(f"{spec.method} {spec.path}: {_why(last)}; retry {attempt + 1}/{attempts - 1} on {self.url}")
                yield _Sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        if isinstance(last, DexError):
            raise last
        if isinstance(last, NEVER_SENT):
            raise DexError(503, NO_NODE, f"no node answered: {type(last).__name__}: {last}")
        raise DexError(503, OUTCOME_UNKNOWN, f"outcome unknown: {type(last).__name__}: {last}")


def asked_wait_s(code: int | None, shed_ms: str | None, retry_after: str | None) -> float | None:
    """How long a refusal with this code and these headers asks the client to
    wait (None: it does not), at most BACKOFF_MAX_S: X-DEX-SHED-MS on a shed
    request (-1008), else Retry-After. bench/cluster.py's load generator
    waits by this too."""
    if code == OVERLOADED and shed_ms and shed_ms.isdigit():
        return min(int(shed_ms) / 1000, BACKOFF_MAX_S)
    if retry_after and retry_after.isdigit():
        return min(float(retry_after), BACKOFF_MAX_S)
    return None


# ------------------------------------------------------------- the endpoints


class _Endpoints:
    """Every endpoint, once. `_call` is the transport's: it returns the answer
    (Client) or an awaitable of it (AsyncClient)."""

    def _call(self, spec: RequestSpec):  # pragma: no cover - each transport defines it
        raise NotImplementedError

    def request(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None, signed: bool = False, retry: bool = True):
        """Send a request, retrying on 503, timeouts and dead nodes (moving to
        the next node). Only idempotent requests should pass retry=True."""
        return self._call(RequestSpec(method, path, params, body, signed, retry))

    def place_order(self, symbol: str, side: str, type: str = "LIMIT", *, price: str | None = None, quantity: str | None = None,
                    quote_order_qty: str | None = None, time_in_force: str | None = None, post_only: bool = False,
                    client_order_id: str | None = None, stp: str | None = None, resp_type: str = "FULL"):
        body = _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type)
        return self.request("POST", "/api/v1/order", body=body, signed=True)

    def batch_orders(self, orders: list[dict]):
        """Place up to 100 orders under one signature, in one block, in order.
        Each order is a dict of POST /order fields; each gets a client order id
        if it has none, so the whole batch can be retried safely. Returns one
        entry per order: its answer, or {code, msg} if it alone was rejected
        (`error_of(entry)` makes that a typed DexError, None for an accepted one)."""
        batch = [{**o, **_market_of(o), "newClientOrderId": o.get("newClientOrderId") or new_client_order_id()} for o in orders]
        return self.request("POST", "/api/v1/batchOrders", body={"batchOrders": batch}, signed=True)

    def cancel_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None):
        return self.request("DELETE", "/api/v1/order", params={"symbol": market(symbol), "orderId": order_id, "origClientOrderId": client_order_id}, signed=True)

    def cancel_open_orders(self, symbol: str | None = None):
        """Cancel every open order of this account, in `symbol` or in all markets."""
        return self.request("DELETE", "/api/v1/openOrders", params={"symbol": market(symbol)}, signed=True)

    def amend_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None,
                    new_price: str | None = None, new_qty: str | None = None):
        """Change an open order's price and/or total quantity (filled part included)."""
        body: dict = {"symbol": market(symbol)}
        if order_id is not None:
            body["orderId"] = order_id
        if client_order_id is not None:
            body["origClientOrderId"] = client_order_id
        if new_price is not None:
            body["newPrice"] = decimal_text("new_price", new_price)
        if new_qty is not None:
            body["newQty"] = decimal_text("new_qty", new_qty)
        return self.request("PUT", "/api/v1/order/amend", body=body, signed=True)

    def test_order(self, symbol: str, side: str, type: str = "LIMIT", *, price: str | None = None, quantity: str | None = None,
                   quote_order_qty: str | None = None, time_in_force: str | None = None, post_only: bool = False,
                   client_order_id: str | None = None, stp: str | None = None, resp_type: str = "FULL"):
        """Check a new order as POST /order would, without placing it: {} if it would be accepted."""
        body = _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type)
        return self.request("POST", "/api/v1/order/test", body=body, signed=True)

    def my_trades(self, symbol: str, limit: int = 500):
        return self.request("GET", "/api/v1/myTrades", params={"symbol": market(symbol), "limit": limit}, signed=True)

    def get_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None):
        return self.request("GET", "/api/v1/order", params={"symbol": market(symbol), "orderId": order_id, "origClientOrderId": client_order_id}, signed=True)

    def open_orders(self, symbol: str | None = None):
        return self.request("GET", "/api/v1/openOrders", params={"symbol": market(symbol)}, signed=True)

    def account(self):
        return self.request("GET", "/api/v1/account", signed=True)

    def deposit(self, asset: str, amount: str, client_transfer_id: str | None = None):
        # Idempotent: every attempt carries the same clientTransferId, so a
        # retry after an unknown outcome is answered with the first outcome.
        body = {"asset": asset, "amount": decimal_text("amount", amount), "clientTransferId": client_transfer_id or new_client_transfer_id()}
        return self.request("POST", "/api/v1/deposit", body=body, signed=True)

    def withdraw(self, asset: str, amount: str, client_transfer_id: str | None = None):
        body = {"asset": asset, "amount": decimal_text("amount", amount), "clientTransferId": client_transfer_id or new_client_transfer_id()}
        return self.request("POST", "/api/v1/withdraw", body=body, signed=True)

    def depth(self, symbol: str, limit: int = 100):
        return self.request("GET", "/api/v1/depth", params={"symbol": market(symbol), "limit": limit})

    def trades(self, symbol: str, limit: int = 100):
        return self.request("GET", "/api/v1/trades", params={"symbol": market(symbol), "limit": limit})

    def exchange_info(self):
        return self.request("GET", "/api/v1/exchangeInfo")

    def server_time(self):
        return self.request("GET", "/api/v1/time")

    def ticker(self, symbol: str | None = None):
        """24 h statistics of one market, or a list of every market's without `symbol`."""
        return self.request("GET", "/api/v1/ticker/24hr", params={"symbol": market(symbol)})

    def klines(self, symbol: str, interval: str = "1m", limit: int = 500, start_time: int | None = None, end_time: int | None = None):
        """Binance's kline arrays, oldest first (see GET /api/v1/klines)."""
        return self.request("GET", "/api/v1/klines", params={"symbol": market(symbol), "interval": interval, "limit": limit, "startTime": start_time, "endTime": end_time})

    def blocks(self, limit: int = 20, from_height: int | None = None):
        return self.request("GET", "/api/v1/blocks", params={"limit": limit, "fromHeight": from_height})

    def block(self, height: int):
        return self.request("GET", f"/api/v1/blocks/{height}")

    def cluster_status(self):
        return self.request("GET", "/api/v1/cluster/status")


# ---------------------------------------------------------------- transports


class Client(_Nodes, _Endpoints):
    """The blocking client (httpx.Client)."""

    def __init__(self, urls: list[str] | str, keys: Keypair | None = None, *, timeout_s: float = TIMEOUT_S_DEFAULT, retries: int = RETRIES_MAX) -> None:
        _Nodes.__init__(self, urls, keys, retries)
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, spec: RequestSpec):
        steps = self._attempts(spec)
        step = next(steps)
        while True:
            outcome: httpx.Response | Exception | None = None
            if isinstance(step, _Sleep):
                time.sleep(step.seconds)
            else:
                try:
                    outcome = self._http.request(step.method, step.url, content=step.content, headers=step.headers)
                except TRANSPORT_ERRORS as e:
                    outcome = e
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value

    def stream_book(self, symbol: str, **options) -> Generator[LocalBook, None, None]:
        """A local order book of `symbol` kept from the depth stream, as
        AsyncClient.stream_book keeps it, for blocking code:

            for book in client.stream_book("BTCUSDT"):
                print(book.last_update_id, book.bids(3), book.asks(3))

        The BookKeeper runs on a private event loop, one step per book
        yielded; what arrives while the loop body runs waits in the socket
        (a slow body falls behind, and a gap resyncs). Not for code already
        inside a running event loop: use AsyncClient there. Leaving the loop
        (break, an exception, close()) closes the connection."""
        urls = self.urls[self._current :] + self.urls[: self._current]
        keeper = BookKeeper(urls, symbol, **options)
        loop = asyncio.new_event_loop()
        updates = keeper.__aiter__()
        try:
            while True:
                try:
                    book = loop.run_until_complete(updates.__anext__())
                except StopAsyncIteration:
                    return
                yield book
        finally:
            loop.run_until_complete(keeper.aclose())
            loop.close()


class AsyncClient(_Nodes, _Endpoints):
    """The asyncio client (httpx.AsyncClient): the same methods, awaited."""

    def __init__(self, urls: list[str] | str, keys: Keypair | None = None, *, timeout_s: float = TIMEOUT_S_DEFAULT, retries: int = RETRIES_MAX) -> None:
        _Nodes.__init__(self, urls, keys, retries)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _call(self, spec: RequestSpec):
        steps = self._attempts(spec)
        step = next(steps)
        while True:
            outcome: httpx.Response | Exception | None = None
            if isinstance(step, _Sleep):
                await asyncio.sleep(step.seconds)
            else:
                try:
                    outcome = await self._http.request(step.method, step.url, content=step.content, headers=step.headers)
                except TRANSPORT_ERRORS as e:
                    outcome = e
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value

    def stream_book(self, symbol: str, **options) -> BookKeeper:
        """A local order book of `symbol` kept from the depth stream, starting at
        this client's current node: `async for book in client.stream_book(s)`.
        Options go to BookKeeper (on_status, connect_timeout_s)."""
        urls = self.urls[self._current :] + self.urls[: self._current]
        return BookKeeper(urls, symbol, **options)


# ------------------------------------------------------------------ streams


def ws_url(http_url: str) -> str:
    """ws://host:port/ws for a node's http://host:port (wss for https)."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :] + WS_PATH
    assert http_url.startswith("http://"), f"not an http URL: {http_url}"
    return "ws://" + http_url[len("http://") :] + WS_PATH


class StreamError(DexError):
    """The node answered a stream request with an error (e.g. -1121 Invalid symbol)."""


class BookKeeper:
    """Keeps `book` (a LocalBook) in sync with one market's depth stream.

        async with BookKeeper(urls, "BTCUSDT") as keeper:
            async for book in keeper:           # after each snapshot and applied diff
                print(book.last_update_id, book.bids(1), book.asks(1))

    Only a synced book is yielded. On a gap it unsubscribes and subscribes
    again (the server then sends a fresh snapshot) and skips diffs until that
    snapshot; on a closed or failed connection it moves to the next node and
    subscribes there. After `reconnects_max` failed connections in a row
    without a snapshot it raises DexError(-1001). `on_status` receives one
    line of progress text per connection event (for a CLI).

    Test hook: `drop_next_diffs(n)` drops the next n diffs as if the network
    had lost them, so the gap detection and resync can be exercised.
    """

    def __init__(self, urls: list[str] | str, symbol: str, *, on_status=None, connect_timeout_s: float = WS_CONNECT_TIMEOUT_S,
                 reconnects_max: int = WS_RECONNECTS_MAX) -> None:
        assert reconnects_max >= 1
        self.nodes = _Nodes(urls, None, 1)
        self.reconnects_max = reconnects_max
        self.symbol = market(symbol)
        self.stream = f"{self.symbol.lower()}@depth"
        self.book = LocalBook(self.symbol)
        self.on_status = on_status or (lambda line: None)
        self.connect_timeout_s = connect_timeout_s
        self.gaps = 0
        self.resubscribes = 0
        self.reconnects = 0
        self._drop_diffs = 0
        self._request_id = 0
        self._ws = None
        self._closed = False
        self._updates: AsyncIterator[LocalBook] | None = None

    @property
    def url(self) -> str:
        return self.nodes.url

    def drop_next_diffs(self, count: int = 1) -> None:
        """Test hook: lose the next `count` diffs before they reach the book."""
        assert count >= 1
        self._drop_diffs += count

    async def __aenter__(self) -> BookKeeper:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[LocalBook]:
        if self._updates is None:
            self._updates = self._run()
        return self._updates

    async def aclose(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()  # ends a pending receive: the generator then returns
        if self._updates is not None and not self._updates.ag_running:
            await self._updates.aclose()

    async def _send(self, ws, method: str, params: list) -> int:
        self._request_id += 1
        await ws.send(json.dumps({"method": method, "params": params, "id": self._request_id}))
        return self._request_id

    async def _run(self) -> AsyncIterator[LocalBook]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

        failures = 0
        delay = BACKOFF_S
        while not self._closed:
            target = ws_url(self.url)
            self.on_status(f"connecting to {target}")
            try:
                async with connect(target, open_timeout=self.connect_timeout_s, max_size=WS_FRAME_BYTES_MAX, proxy=None, compression=None) as ws:
                    self._ws = ws
                    subscribe_id = await self._send(ws, "SUBSCRIBE", [self.stream])
                    self.on_status(f"subscribed to {self.stream} on {self.url}; waiting for the first snapshot")
                    async for raw in ws:
                        msg = json.loads(raw)
                        if not isinstance(msg, dict):
                            continue
                        if "stream" not in msg:
                            error = msg.get("error")
                            if error and msg.get("id") == subscribe_id:
                                raise StreamError(400, error.get("code", 0), error.get("msg", "subscription refused"))
                            continue
                        if msg["stream"] != self.stream or not isinstance(msg.get("data"), dict):
                            continue
                        data = msg["data"]
                        kind = data.get("e")
                        if kind == "depthSnapshot":
                            self.book.apply_snapshot(data)
                            failures, delay = 0, BACKOFF_S
                            yield self.book
                        elif kind == "depthUpdate" and self.book.synced:
                            if self._drop_diffs:
                                self._drop_diffs -= 1
                                continue
                            try:
                                applied = self.book.apply_diff(data)
                            except GapDetected as gap:
                                self.gaps += 1
                                self.resubscribes += 1
                                self.on_status(f"{gap}; resubscribing for a fresh snapshot")
                                await self._send(ws, "UNSUBSCRIBE", [self.stream])
                                subscribe_id = await self._send(ws, "SUBSCRIBE", [self.stream])
                                continue
                            if applied:
                                yield self.book
                    why = f"closed by {self.url} ({ws.close_code} {ws.close_reason})"
            except StreamError:
                raise
            except (OSError, TimeoutError, InvalidURI, InvalidHandshake, WebSocketException, ValueError) as e:
                why = f"{type(e).__name__}: {e}"
            finally:
                self._ws = None
            if self._closed:
                return
            self.book.clear()
            failures += 1
            self.reconnects += 1
            if failures >= self.reconnects_max:
                raise DexError(503, NO_NODE, f"depth stream of {self.symbol}: {failures} connections failed in a row; last: {why}")
            self.nodes.rotate()
            self.on_status(f"stream lost: {why}; moving to {self.url}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, WS_RECONNECT_BACKOFF_MAX_S)


def _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type) -> dict:
    body = {"symbol": market(symbol), "side": side, "type": type, "newClientOrderId": client_order_id or new_client_order_id(), "newOrderRespType": resp_type}
    if price is not None:
        body["price"] = decimal_text("price", price)
    if quantity is not None:
        body["quantity"] = decimal_text("quantity", quantity)
    if quote_order_qty is not None:
        body["quoteOrderQty"] = decimal_text("quote_order_qty", quote_order_qty)
    if time_in_force is not None:
        body["timeInForce"] = time_in_force
    if post_only:
        body["postOnly"] = True
    if stp is not None:
        body["selfTradePreventionMode"] = stp
    return body


def _why(error: Exception | None) -> str:
    if isinstance(error, DexError):
        return f"HTTP {error.status} {error.code} {error.msg}"
    return type(error).__name__


def _json(r: httpx.Response) -> dict:
    try:
        payload = r.json()
    except ValueError:
        return {"code": -1000, "msg": r.text[:200]}
    return payload if isinstance(payload, dict) else {"data": payload}
