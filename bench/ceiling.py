"""The ceiling for bench/cluster.py: what one process of the same HTTP stack
serves when a request does only what any signed order must do.

`python bench/ceiling.py PORT` serves, with uvicorn (uvloop, httptools, one
process, as a dex node runs it) and FastAPI:

    POST /api/v1/order        pydantic validation of the order body, one
                              Ed25519 check of X-API-KEY / X-TIMESTAMP /
                              X-SIGNATURE over the signed bytes, an ACK answer
    POST /api/v1/batchOrders  the same for a batch (one signature)
    DELETE /api/v1/order, DELETE /api/v1/openOrders
                              the signature check, a CANCELED answer

No ledger, no Raft, no forwarding: bench/cluster.py drives it with the same
load generator and request shapes as the cluster and reports
`ceiling_orders_per_s` and `ceiling_ratio` (the cluster's single orders/s
over this), a ratio measured in one run on one machine.
"""

from __future__ import annotations

import base64
import itertools
import sys
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from dex.auth import signed_payload, verify
from dex.ledger.translate import BatchOrders, NewOrder  # the very models the nodes validate with


app = FastAPI()
order_ids = itertools.count(1)


def refused(code: int, msg: str, status: int = 401) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


async def signed(request: Request) -> bytes | None:
    """The body if the request's signature verifies, else None."""
    h = request.headers
    body = await request.body()
    try:
        key = bytes.fromhex(h["x-api-key"])
        signature = base64.b64decode(h["x-signature"])
        payload = signed_payload(int(h["x-timestamp"]), request.method, request.url.path, request.url.query, body)
    except (KeyError, ValueError):
        return None
    return body if verify(key, signature, payload) else None


def ack(o: NewOrder) -> dict:
    return {"symbol": o.symbol, "orderId": next(order_ids), "clientOrderId": o.newClientOrderId, "blockHeight": 1}


@app.post("/api/v1/order")
async def order(request: Request):
    body = await signed(request)
    if body is None:
        return refused(-1022, "Signature for this request is not valid.")
    return ack(NewOrder.model_validate_json(body))


@app.post("/api/v1/batchOrders")
async def batch(request: Request):
    body = await signed(request)
    if body is None:
        return refused(-1022, "Signature for this request is not valid.")
    return [ack(o) for o in BatchOrders.model_validate_json(body).batchOrders]


@app.delete("/api/v1/order")
async def cancel(request: Request):
    if await signed(request) is None:
        return refused(-1022, "Signature for this request is not valid.")
    return {"status": "CANCELED", "blockHeight": 1}


@app.delete("/api/v1/openOrders")
async def cancel_all(request: Request):
    if await signed(request) is None:
        return refused(-1022, "Signature for this request is not valid.")
    return []


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, loop="uvloop", http="httptools")
