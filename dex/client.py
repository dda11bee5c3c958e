"""A Python client for dex: signs requests, retries safely, moves between nodes.

    from dex.auth import Keypair
    from dex.client import Client

    c = Client(["http://127.0.0.1:8101", "http://127.0.0.1:8102"], Keypair.generate())
    c.deposit("USDT", "10000")
    c.place_order("BTCUSDT", "BUY", "LIMIT", price="50000", quantity="0.01")

Every new order carries a client order id (one is made if you pass none), so
a retry after a timeout, a 503 or a dead node returns the original outcome
instead of placing a second order. Errors from the exchange raise `DexError`
with its `code` and `msg`.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlencode

import httpx

from dex.auth import Keypair

RETRIES_MAX = 8
BACKOFF_S = 0.1
BACKOFF_MAX_S = 1.0


class DexError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg} (HTTP {status})")
        self.status = status
        self.code = code
        self.msg = msg


def new_client_order_id() -> str:
    return "c-" + secrets.token_hex(12)


class Client:
    def __init__(self, urls: list[str] | str, keys: Keypair | None = None, *, timeout_s: float = 10.0, retries: int = RETRIES_MAX) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        assert self.urls, "at least one node URL"
        self.keys = keys
        self.retries = retries
        self._current = 0
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.urls[self._current]

    # ------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None, signed: bool = False, retry: bool = True):
        """Send a request, retrying on 503, timeouts and dead nodes (moving to
        the next node). Only idempotent requests should pass retry=True."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        attempts = self.retries if retry else 1
        delay = BACKOFF_S
        last: Exception | None = None
        for attempt in range(attempts):
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if signed:
                assert self.keys is not None, "a signed request needs keys"
                headers.update(self.keys.headers(time.time_ns() // 1_000_000, method, path, query, raw))
            url = f"{self.url}{path}" + (f"?{query}" if query else "")
            try:
                r = self._http.request(method, url, content=raw or None, headers=headers)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException) as e:
                last = e
                self._current = (self._current + 1) % len(self.urls)
            else:
                if r.status_code == 503 or r.status_code == 429:
                    payload = _json(r)
                    last = DexError(r.status_code, payload.get("code", 0), payload.get("msg", r.text))
                    retry_after = r.headers.get("Retry-After")
                    if retry_after and retry_after.isdigit():
                        delay = max(delay, min(float(retry_after), BACKOFF_MAX_S))
                    if r.status_code == 503 and len(self.urls) > 1 and attempt % 2:
                        self._current = (self._current + 1) % len(self.urls)
                else:
                    if r.status_code >= 400:
                        payload = _json(r)
                        raise DexError(r.status_code, payload.get("code", 0), payload.get("msg", r.text))
                    return r.json()
            if attempt + 1 < attempts:
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        if isinstance(last, DexError):
            raise last
        raise DexError(503, -1001, f"no node answered: {last}")

    # ------------------------------------------------------------ endpoints

    def place_order(self, symbol: str, side: str, type: str = "LIMIT", *, price: str | None = None, quantity: str | None = None,
                    quote_order_qty: str | None = None, time_in_force: str | None = None, post_only: bool = False,
                    client_order_id: str | None = None, stp: str | None = None, resp_type: str = "FULL") -> dict:
        body = _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type)
        return self.request("POST", "/api/v1/order", body=body, signed=True)

    def batch_orders(self, orders: list[dict]) -> list:
        """Place up to 100 orders under one signature, in one block, in order.
        Each order is a dict of POST /order fields; each gets a client order id
        if it has none, so the whole batch can be retried safely. Returns one
        entry per order: its answer, or {code, msg} if it alone was rejected."""
        batch = [{**o, "newClientOrderId": o.get("newClientOrderId") or new_client_order_id()} for o in orders]
        return self.request("POST", "/api/v1/batchOrders", body={"batchOrders": batch}, signed=True)

    def cancel_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return self.request("DELETE", "/api/v1/order", params={"symbol": symbol, "orderId": order_id, "origClientOrderId": client_order_id}, signed=True)

    def cancel_open_orders(self, symbol: str | None = None) -> list:
        """Cancel every open order of this account, in `symbol` or in all markets."""
        return self.request("DELETE", "/api/v1/openOrders", params={"symbol": symbol}, signed=True)

    def amend_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None,
                    new_price: str | None = None, new_qty: str | None = None) -> dict:
        """Change an open order's price and/or total quantity (filled part included)."""
        body: dict = {"symbol": symbol}
        if order_id is not None:
            body["orderId"] = order_id
        if client_order_id is not None:
            body["origClientOrderId"] = client_order_id
        if new_price is not None:
            body["newPrice"] = str(new_price)
        if new_qty is not None:
            body["newQty"] = str(new_qty)
        return self.request("PUT", "/api/v1/order/amend", body=body, signed=True)

    def test_order(self, symbol: str, side: str, type: str = "LIMIT", *, price: str | None = None, quantity: str | None = None,
                   quote_order_qty: str | None = None, time_in_force: str | None = None, post_only: bool = False,
                   client_order_id: str | None = None, stp: str | None = None, resp_type: str = "FULL") -> dict:
        """Check a new order as POST /order would, without placing it: {} if it would be accepted."""
        body = _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type)
        return self.request("POST", "/api/v1/order/test", body=body, signed=True)

    def my_trades(self, symbol: str, limit: int = 500) -> list:
        return self.request("GET", "/api/v1/myTrades", params={"symbol": symbol, "limit": limit}, signed=True)

    def get_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return self.request("GET", "/api/v1/order", params={"symbol": symbol, "orderId": order_id, "origClientOrderId": client_order_id}, signed=True)

    def open_orders(self, symbol: str | None = None) -> list:
        return self.request("GET", "/api/v1/openOrders", params={"symbol": symbol}, signed=True)

    def account(self) -> dict:
        return self.request("GET", "/api/v1/account", signed=True)

    def deposit(self, asset: str, amount: str) -> dict:
        # Not idempotent: a retry after an unknown outcome could deposit twice.
        return self.request("POST", "/api/v1/deposit", body={"asset": asset, "amount": str(amount)}, signed=True, retry=False)

    def depth(self, symbol: str, limit: int = 100) -> dict:
        return self.request("GET", "/api/v1/depth", params={"symbol": symbol, "limit": limit})

    def trades(self, symbol: str, limit: int = 100) -> list:
        return self.request("GET", "/api/v1/trades", params={"symbol": symbol, "limit": limit})

    def blocks(self, limit: int = 20, from_height: int | None = None) -> dict:
        return self.request("GET", "/api/v1/blocks", params={"limit": limit, "fromHeight": from_height})

    def block(self, height: int) -> dict:
        return self.request("GET", f"/api/v1/blocks/{height}")

    def cluster_status(self) -> dict:
        return self.request("GET", "/api/v1/cluster/status")


def _order_body(symbol, side, type, price, quantity, quote_order_qty, time_in_force, post_only, client_order_id, stp, resp_type) -> dict:
    body = {"symbol": symbol, "side": side, "type": type, "newClientOrderId": client_order_id or new_client_order_id(), "newOrderRespType": resp_type}
    if price is not None:
        body["price"] = str(price)
    if quantity is not None:
        body["quantity"] = str(quantity)
    if quote_order_qty is not None:
        body["quoteOrderQty"] = str(quote_order_qty)
    if time_in_force is not None:
        body["timeInForce"] = time_in_force
    if post_only:
        body["postOnly"] = True
    if stp is not None:
        body["selfTradePreventionMode"] = stp
    return body


def _json(r: httpx.Response) -> dict:
    try:
        payload = r.json()
    except ValueError:
        return {"code": -1000, "msg": r.text[:200]}
    return payload if isinstance(payload, dict) else {"data": payload}
