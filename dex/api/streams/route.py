"""The /ws route: admit a connection (at most CONNECTIONS_PER_NODE_MAX, and
CONNECTIONS_PER_ADDRESS_MAX from one source address: over either it is
closed 1013 with the reason), read its requests (SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS, CHALLENGE, LOGIN) and answer each on the connection's
queue, in order; the hub sends the rest.

Every frame gets an answer or a close code, whatever it holds: odd values
(non-ASCII digits, NUL, deep nesting, huge numbers) are typed errors, and an
unexpected exception is answered -1000 and logged with its traceback once
per exception class, then only counted (`Hub.unexpected`), so frames cannot
fill the log."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket

from dex.api.errors import MANDATORY_PARAM, TOO_MANY_REQUESTS, UNKNOWN, ApiError
from dex.api.streams.hub import Hub
from dex.api.streams.wire import CLOSE_TRY_AGAIN_LATER, FRAME_BYTES_MAX, INBOUND_PER_S, Conn, error, reply

router = APIRouter(tags=["streams"])
log = logging.getLogger("dex.api.streams")
UNEXPECTED_KINDS_MAX = 64  # exception classes counted one by one; past this they share "other"


async def _handle(hub: Hub, conn: Conn, raw) -> None:
    """One inbound frame: a request, answered on conn's queue in order."""
    if conn.closed:  # dropped (a cap, a slow consumer): nothing more for it
        return
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
    except RecursionError:  # e.g. 5 KB of '['
        hub.put(conn, error(MANDATORY_PARAM, "JSON nested too deeply."))
        return
    except ValueError:  # also a number of more than 4,300 digits
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
        elif method == "CHALLENGE":
            hub.put(conn, reply({"challenge": conn.challenge}, request_id))
        elif method == "LOGIN":
            account = hub.login(conn, request.get("params"))
            if account is not None:  # else the account's cap is full and conn is closing
                hub.put(conn, reply({"account": str(account)}, request_id))
        else:
            raise ApiError(400, MANDATORY_PARAM, "Unknown method: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, CHALLENGE or LOGIN.")
    except ApiError as e:
        hub.put(conn, error(e.code, e.msg, request_id))


def _unexpected(hub: Hub, e: Exception) -> None:
    """Count an unexpected exception; log its traceback the first time its class is seen."""
    unexpected = hub.unexpected
    kind = type(e).__name__ if len(unexpected) < UNEXPECTED_KINDS_MAX or type(e).__name__ in unexpected else "other"
    unexpected[kind] = unexpected.get(kind, 0) + 1
    if unexpected[kind] == 1:
        log.error("unexpected %s answering a stream frame (logged once per class, then counted)", kind, exc_info=e)


@router.websocket("/ws")
async def streams(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    conn = Conn(websocket, hub.queue_max, "" if websocket.client is None else websocket.client.host)
    refused = hub.admit(conn)
    if refused is not None:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, refused)
        return
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
            try:
                await _handle(hub, conn, message.get("text") if message.get("text") is not None else message.get("bytes"))
            except Exception as e:  # a bug: answer it and keep the connection, but never a traceback per frame
                _unexpected(hub, e)
                hub.put(conn, error(UNKNOWN, "An unexpected error; it has been logged."))
    finally:
        done.cancel()
        hub.forget(conn)
        if conn.sender is not None:
            conn.sender.cancel()
