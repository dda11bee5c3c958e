"""The node's HTTP server protocol: every input bounded before it is read.

uvicorn's httptools protocol buffers a request's head and body for as long as
a client keeps sending, and keeps a connection that never finishes its head
open forever. `BoundedHttpProtocol` (a subclass, passed to uvicorn as its
`http` class) adds, before the app sees a byte:

- the head (request line + headers) at most HEAD_BYTES_MAX bytes, counted as
  they arrive and checked after each read is parsed (so at most one socket
  read of slack): else 431 and close;
- the head complete within HEAD_TIMEOUT_S of the connection opening or of the
  request's first byte (slowloris): else the connection is closed;
- a body at most BODY_BYTES_MAX bytes: a larger Content-Length is answered 413
  before any of it is read; a chunked body is cut off at the bound;
- at most CONNECTIONS_PER_ADDRESS_MAX open HTTP connections per client
  address, and CONNECTIONS_MAX in all: more are answered 429 / 503 and closed
  at once. A connection upgraded to a WebSocket leaves these counts; the
  stream hub bounds WebSockets itself.

Every refusal is a JSON `{code, msg}` with `Connection: close`, and is logged
once per kind with a count (dex.api.errors.log_once), never per connection.

It also sends each answer in one write: uvicorn writes a response's head and
its body separately, two send calls where one does (`HeadWithBody`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dex.api.errors import HEAD_TOO_LARGE, OVERLOADED, PAYLOAD_TOO_LARGE, TOO_MANY_REQUESTS, log_once
from dex.ledger.codec import SIGNED_PAYLOAD_BYTES_MAX

log = logging.getLogger("dex.api.server")

HEAD_BYTES_MAX = 16 * 1024
HEAD_TIMEOUT_S = 10.0
BODY_BYTES_MAX = 48 * 1024  # a 100-order batch is ~25 KB
CONNECTIONS_PER_ADDRESS_MAX = 512
CONNECTIONS_MAX = 4096
RETRY_AFTER_S = 1  # on a 429 / 503 refusal of a connection over the caps
# The signed bytes are timestamp + method + path + query + body: a body at the
# bound, with a head at its bound, still fits a block's signed payload.
assert BODY_BYTES_MAX + HEAD_BYTES_MAX <= SIGNED_PAYLOAD_BYTES_MAX
assert CONNECTIONS_PER_ADDRESS_MAX <= CONNECTIONS_MAX

_REASONS = {413: b"Payload Too Large", 429: b"Too Many Requests", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


class BoundedHttpProtocol(HttpToolsProtocol):
    # Open connections by client address, shared by every connection of the
    # process (one server per node process).
    open_by_address: Counter = Counter()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        self._counted = False
        self._head_bytes = 0
        self._in_head = True
        self._refused = False
        self._body_bytes = 0
        opened = self.open_by_address
        if sum(opened.values()) >= CONNECTIONS_MAX:
            self._refuse(503, OVERLOADED, "Too many open connections to this node. Please try again.", "connections_max")
            return
        if opened[self._address] >= CONNECTIONS_PER_ADDRESS_MAX:
            self._refuse(429, TOO_MANY_REQUESTS, f"Too many open connections from one address: at most {CONNECTIONS_PER_ADDRESS_MAX}.", "connections_per_address")
            return
        opened[self._address] += 1
        self._counted = True
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)
        # Every later write and close of this connection, the response cycles'
        # and uvicorn's own (a 400, a keep-alive timeout, shutdown, a WebSocket
        # upgrade's protocol), goes through one HeadWithBody: in order, and a
        # close sends what it holds first.
        self.transport = HeadWithBody(transport, self.loop)

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            opened = self.open_by_address
            opened[self._address] -= 1
            if opened[self._address] <= 0:
                del opened[self._address]

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc) -> None:
        self._uncount()
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._uncount()
        self._cancel_head_timer()
        super().handle_websocket_upgrade()

    # ------------------------------------------------------------- head

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: one read may hold a whole head and a body.
        if self._in_head and self._head_bytes > HEAD_BYTES_MAX and not self._refused:
            self._refuse(431, HEAD_TOO_LARGE, f"Request head over {HEAD_BYTES_MAX} bytes.", "head_bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._body_bytes = 0
        if getattr(self, "_head_timer", None) is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            log_once(log, "head_timeout", "closed a connection whose request head was not complete within %.0f s", HEAD_TIMEOUT_S)
            self._refused = True
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        length = next((v for n, v in self.headers if n == b"content-length"), None)
        if length is not None and (not length.isdigit() or len(length) > 12 or int(length) > BODY_BYTES_MAX):
            self._refuse(413, PAYLOAD_TOO_LARGE, f"Request body over {BODY_BYTES_MAX} bytes.", "body_bytes")
            return
        super().on_headers_complete()

    # ------------------------------------------------------------- body

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > BODY_BYTES_MAX:  # a chunked body: the app sees the connection drop
            self._refuse(413, PAYLOAD_TOO_LARGE, f"Request body over {BODY_BYTES_MAX} bytes.", "body_bytes")
            if self.cycle is not None:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()

    # ----------------------------------------------------------- refusal

    def _refuse(self, status: int, code: int, msg: str, kind: str) -> None:
        """Answer `{code, msg}` with Connection: close and drop the connection."""
        self._refused = True
        self._cancel_head_timer()
        log_once(log, kind, "refused a connection: %s", msg)
        body = json.dumps({"code": code, "msg": msg}).encode()
        # Too many connections (429, 503) passes: say when to come back, as
        # every other overload answer does; a client that retried at once
        # only reopened connections the cap refused again. A head or body
        # over its bound (431, 413) never passes: no Retry-After.
        retry = b"retry-after: %d\r\n" % RETRY_AFTER_S if status in (429, 503) else b""
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%sconnection: close\r\n\r\n" % (status, _REASONS[status], len(body), retry)
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


class HeadWithBody:
    """A connection's transport as its protocol sees it: a write is held
    until the next one, which goes out joined to it, or until the loop's next
    turn. uvicorn writes an answer's head and then its body, each at once: on
    a loaded node that second send (a syscall, and a wake-up of the client)
    was a tenth of a follower's CPU at saturation. Everything but write and
    close is the transport's own."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport, loop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self.flush)  # an answer with no body (HEAD) still goes out this turn
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)
