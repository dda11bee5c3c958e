"""The /ws route: accept a connection (at most CONNECTIONS_PER_NODE_MAX),
read its requests (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, LOGIN) and
answer each on the connection's queue, in order; the hub sends the rest."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket

from dex.api.errors import MANDATORY_PARAM, TOO_MANY_REQUESTS, ApiError
from dex.api.streams.hub import Hub
from dex.api.streams.wire import CLOSE_TRY_AGAIN_LATER, CONNECTIONS_PER_NODE_MAX, FRAME_BYTES_MAX, INBOUND_PER_S, Conn, error, reply

router = APIRouter(tags=["streams"])


async def _handle(hub: Hub, conn: Conn, raw) -> None:
    """One inbound frame: a request, answered on conn's queue in order."""
    if not isinstance(raw, str):
        hub.put(conn, error(MANDATORY_PARAM, "Send JSON text frames."))
        return
    if len(raw) > FRAME_BYTES_MAX:
        hub.put(conn, error(MANDATORY_PARAM, f"Frame too large: at most {FRAME_BYTES_MAX} bytes."))
        return
    if conn.inbound.take(0) > 0:
        hub.put(conn, error(TOO_MANY_REQUESTS, f"Too many messages: at most {INBOUND_PER_S} per second."))
        return
    try:
        request = json.loads(raw)
    except ValueError:
        hub.put(conn, error(MANDATORY_PARAM, "Malformed JSON."))
        return
    if not isinstance(request, dict):
        hub.put(conn, error(MANDATORY_PARAM, 'A request is an object: {"method", "params", "id"}.'))
        return
    request_id = request.get("id")
    if not (request_id is None or isinstance(request_id, (str, int))) or isinstance(request_id, bool):
        request_id = None
    method = request.get("method")
    try:
        if method == "SUBSCRIBE":
            names = hub.check_subscribe(conn, request.get("params"))
            hub.put(conn, reply(None, request_id))  # before the snapshots it queues
            hub.subscribe(conn, names)
        elif method == "UNSUBSCRIBE":
            hub.unsubscribe(conn, request.get("params"))
            hub.put(conn, reply(None, request_id))
        elif method == "LIST_SUBSCRIPTIONS":
            hub.put(conn, reply(sorted(conn.streams), request_id))
        elif method == "LOGIN":
            account = hub.login(conn, request.get("params"))
            hub.put(conn, reply({"account": str(account)}, request_id))
        else:
            raise ApiError(400, MANDATORY_PARAM, "Unknown method: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS or LOGIN.")
    except ApiError as e:
        hub.put(conn, error(e.code, e.msg, request_id))


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
