"""The stream bounds of issue 11 over a real four-node cluster: no lockout
(caps per source address and per account), no re-subscribe amplification
(a depth snapshot rendered once per block, outbound queues bounded in
bytes), LOGIN bound to its connection by the server's challenge, and a typed
answer for any odd frame.

Clients connect from several loopback addresses (127.0.0.2, 127.0.0.3, ...:
the client socket is bound before it connects) to stand for different
machines. The flooding clients are raw sockets with a handcrafted upgrade
that send frames and never read.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed

from cluster import local
from dex.api.streams.wire import CONNECTIONS_PER_ADDRESS_MAX, OUTBOUND_QUEUE_BYTES_MAX, USER_STREAMS_PER_ACCOUNT_MAX
from dex.auth import Keypair, signed_payload
from dex.client import Client
from tests.api.test_streams import RECV_S, SYMBOL, WAIT_S, WS, _funded, login_params
from tests.cluster.harness import Cluster

CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
BOOK_LEVELS = 1000  # a side: the depth snapshot the flood asks for is ~46 KB
FLOOD_CONNECTIONS = 20
FLOOD_INTERVAL_S = 0.1  # each flooder re-SUBSCRIBEs 10 times a second (the inbound bound)
ORDERS_MEASURED = 20
LATENCY_RATIO_MAX = 3.0  # p50 under the flood over p50 unloaded
RCVBUF_SMALL = 4096
INBOUND_RETRY_S = 0.2
READ_IDLE_S = 5.0  # a flooder that sends nothing more for this long is still open
TRANSPORT_BYTES_MAX = 256 * 1024  # what the server's event loop buffers above the kernel (64 KiB high water + a frame)
FLOOD_MARGIN = 1.25


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """One cluster for the module: each test connects from addresses and with accounts of its own."""
    return shared_cluster


def _kernel_send_buffer_max() -> int:
    """The most a TCP socket's send buffer may hold here (Linux autotuning's cap)."""
    try:
        return int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _socket_from(url: str, source: str, rcvbuf: int | None = None) -> socket.socket:
    """A TCP connection to the node at `url` from the loopback address `source`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((source, 0))
    s.connect(_host_port(url))
    return s


def _ws_from(url: str, source: str) -> WS:
    return WS(url, sock=_socket_from(url, source))


def _closed_with(ws: WS) -> tuple[int, str]:
    """(code, reason) of the close the server sends `ws` (it must come)."""
    with pytest.raises(ConnectionClosed) as closed:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            ws._next(RECV_S)
    rcvd = closed.value.rcvd
    assert rcvd is not None, closed.value
    return rcvd.code, rcvd.reason


# ------------------------------------------------------------------ lockout

def test_one_address_holding_its_cap_cannot_keep_another_out(cluster: Cluster) -> None:
    url = cluster.url(cluster.ids[1])
    held = [_ws_from(url, "127.0.0.2") for _ in range(CONNECTIONS_PER_ADDRESS_MAX)]
    try:
        for ws in held:  # each is served
            assert ws.call("SUBSCRIBE", ["blocks"])["result"] is None
        extra = _ws_from(url, "127.0.0.2")
        code, reason = _closed_with(extra)
        assert code == CLOSE_TRY_AGAIN_LATER and "per source address" in reason, (code, reason)

        other = _ws_from(url, "127.0.0.3")  # another machine still gets in
        assert other.call("SUBSCRIBE", ["blocks"])["result"] is None
        other.close()

        held.pop().close()  # a freed place is free again
        deadline = time.monotonic() + WAIT_S
        while True:
            again = _ws_from(url, "127.0.0.2")
            try:
                assert again.call("SUBSCRIBE", ["blocks"])["result"] is None
                break
            except ConnectionClosed:  # the server had not yet seen the close
                assert time.monotonic() < deadline, "a closed connection's place was never freed"
        again.close()
    finally:
        for ws in held:
            ws.close()


def test_an_account_has_a_bounded_number_of_user_streams(cluster: Cluster) -> None:
    url = cluster.url(cluster.ids[2])
    keys = Keypair.generate()
    other_keys = Keypair.generate()
    # From several addresses, so the address cap is not what stops them.
    conns = [_ws_from(url, f"127.0.0.{4 + i % 4}") for i in range(USER_STREAMS_PER_ACCOUNT_MAX + 1)]
    try:
        for ws in conns[:-1]:
            challenge = ws.call("CHALLENGE")["result"]["challenge"]
            assert ws.call("LOGIN", login_params(challenge, keys))["result"] == {"account": str(keys.account)}
        last = conns[-1]
        challenge = last.call("CHALLENGE")["result"]["challenge"]
        last.ws.send(json.dumps({"method": "LOGIN", "params": login_params(challenge, keys), "id": 99}))
        code, reason = _closed_with(last)
        assert code == CLOSE_TRY_AGAIN_LATER and "per account" in reason, (code, reason)

        another = _ws_from(url, "127.0.0.8")  # another account is not locked out
        challenge = another.call("CHALLENGE")["result"]["challenge"]
        assert another.call("LOGIN", login_params(challenge, other_keys))["result"] == {"account": str(other_keys.account)}
        another.close()
    finally:
        for ws in conns:
            ws.close()


# ---------------------------------------------------------- LOGIN binding

def test_a_captured_login_is_refused_on_another_connection(cluster: Cluster) -> None:
    url = cluster.url(cluster.ids[3])
    keys = Keypair.generate()
    victim, thief = WS(url), WS(url)
    try:
        challenge = victim.call("CHALLENGE")["result"]["challenge"]
        assert thief.call("CHALLENGE")["result"]["challenge"] != challenge
        captured = login_params(challenge, keys)
        assert victim.call("LOGIN", captured)["result"] == {"account": str(keys.account)}

        assert thief.call("LOGIN", captured)["error"]["code"] == -1022
        assert thief.call("LOGIN", {**captured, "recvWindow": 60000})["error"]["code"] == -1022
        # The old scheme, signed over the timestamp alone, is refused.
        ts = captured["timestamp"]
        old = base64.b64encode(keys.sign(signed_payload(ts, "GET", "/ws", "", b""))).decode()
        assert thief.call("LOGIN", {**captured, "signature": old})["error"]["code"] == -1022
        assert thief.call("SUBSCRIBE", ["user"])["error"]["code"] == -1002  # still not logged in

        # An old timestamp cannot be stretched by an unsigned recvWindow...
        mine = thief.call("CHALLENGE")["result"]["challenge"]
        stale = login_params(mine, keys, timestamp_ms=time.time_ns() // 1_000_000 - 30_000)
        assert thief.call("LOGIN", stale)["error"]["code"] == -1021
        assert thief.call("LOGIN", {**stale, "recvWindow": 60000})["error"]["code"] == -1022
        # ...only by a signed one.
        signed = base64.b64encode(keys.sign(signed_payload(stale["timestamp"], "GET", "/ws", f"challenge={mine}&recvWindow=60000", b""))).decode()
        assert thief.call("LOGIN", {**stale, "recvWindow": 60000, "signature": signed})["result"] == {"account": str(keys.account)}
    finally:
        victim.close()
        thief.close()


# ------------------------------------------------------------- odd frames

ODD_FRAMES = [
    "[" * 5000,
    "{" * 3000,
    '{"method": "LOGIN", "params": {"apiKey": "' + "ab" * 32 + '", "timestamp": "\u00b2", "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": "' + "ab" * 32 + '", "timestamp": "\u0661\u0662\u0663", "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": "' + "ab" * 32 + '", "timestamp": 1, "recvWindow": "\u00b2", "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": "' + "ab" * 32 + '", "timestamp": ' + "9" * 4000 + ', "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": "' + "ab" * 32 + '", "timestamp": 1e308, "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": "\u00e9\u0000", "timestamp": 1, "signature": "x"}}',
    '{"method": "LOGIN", "params": {"apiKey": ["' + "ab" * 32 + '"], "timestamp": 1, "signature": "x"}}',
    '{"method": "LOGIN", "params": [[[[[[]]]]]]}',
    '{"method": "SUBSCRIBE", "params": ["btcusdt\u0000@depth"]}',
    '{"method": "SUBSCRIBE", "params": [' + "9" * 4500 + ']}',
    '{"method": "SUBSCRIBE", "params": [{"a": {"b": {"c": []}}}]}',
    '{"method": "SUBSCRIBE", "params": ["\u0130" * 60 + "@depth"]}',
    '{"method": "UNSUBSCRIBE", "params": "blocks"}',
    '{"method": "\u0000", "id": 1e999}',
    '{"method": NaN, "id": [1]}',
    '"\u0000"',
    "\u0000",
    "",
]


def _admitted(ws: WS, frame: str) -> dict:
    """The answer (with no id) to `frame`, sent again while the inbound rate bound refuses it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        ws.send_raw(frame)
        answer = ws.answer(None)
        if answer.get("error", {}).get("code") != -1003:
            return answer
        assert time.monotonic() < deadline, "the inbound rate bound never let the frame in"
        time.sleep(INBOUND_RETRY_S)  # over 10 frames a second: send again later


def test_odd_frames_get_typed_errors_and_no_traceback(cluster: Cluster) -> None:
    node = cluster.ids[1]
    url = cluster.url(node)
    log_path = local.log_path(cluster.cfg, node)
    tracebacks_before = log_path.read_text(errors="replace").count("Traceback")
    ws = WS(url)
    try:
        for frame in ODD_FRAMES:
            answer = _admitted(ws, frame)
            assert "error" in answer, (frame[:80], answer)
            assert answer["error"]["code"] in (-1102, -1021, -2014, -1121, -1022), (frame[:80], answer)
        assert _admitted(ws, '{"method": "SUBSCRIBE", "params": ["blocks"]}') == {"result": None, "id": None}  # still served
    finally:
        ws.close()
    assert log_path.read_text(errors="replace").count("Traceback") == tracebacks_before


# -------------------------------------------------- re-subscribe amplification

def _raw_ws(url: str, source: str) -> socket.socket:
    """A WebSocket connection by hand (upgrade written, answer read), with a
    small receive buffer, that the test then never reads."""
    s = _socket_from(url, source, RCVBUF_SMALL)
    host, port = _host_port(url)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    s.settimeout(WAIT_S)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "the node closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    s.settimeout(1.0)  # a blocked send gives up (and is retried next round)
    return s


def _client_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_exact(s: socket.socket, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(n - len(out), 1 << 20))
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def _close_of(s: socket.socket) -> tuple[int, str] | str:
    """Read what the server sent `s` up to its close frame: (code, reason),
    "ended" if the connection ended without one, "open" if the server sent
    nothing for READ_IDLE_S."""
    s.settimeout(READ_IDLE_S)
    try:
        return _read_to_close(s)
    except TimeoutError:
        return "open"


def _read_to_close(s: socket.socket) -> tuple[int, str] | str:
    while True:
        head = _read_exact(s, 2)
        if head is None:
            return "ended"
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(_read_exact(s, 2), "big")
        elif n == 127:
            n = int.from_bytes(_read_exact(s, 8), "big")
        payload = _read_exact(s, n)
        if payload is None:
            return "ended"
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode()


def _p50_order_ms(client: Client, count: int) -> float:
    took = []
    for _ in range(count):
        start = time.perf_counter()
        client.place_order(SYMBOL, "BUY", price="20000.00", quantity="0.00100")
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took)


def test_a_resubscribe_flood_neither_slows_the_node_nor_is_buffered_without_bound(cluster: Cluster) -> None:
    node = cluster.ids[1]
    url = cluster.url(node)
    maker, _ = _funded(cluster.urls, ("USDT", "40000000"), ("BTC", "100"))
    for side, low in (("BUY", 30000), ("SELL", 70000)):  # 1,000 levels a side
        for first in range(0, BOOK_LEVELS, 100):
            maker.batch_orders([{"symbol": SYMBOL, "side": side, "type": "LIMIT", "price": f"{low + j}.00", "quantity": "0.00100"} for j in range(first, first + 100)])
    probe = WS(url)
    assert probe.call("SUBSCRIBE", ["btcusdt@depth"])["result"] is None
    snapshot = probe.wait(lambda m: m["data"]["e"] == "depthSnapshot", "the snapshot")
    assert len(snapshot["data"]["bids"]) == len(snapshot["data"]["asks"]) == BOOK_LEVELS
    snapshot_bytes = len(json.dumps(snapshot, separators=(",", ":")))
    # Enough re-SUBSCRIBEs for every flooder to fill the kernel's send
    # buffer and the event loop's, then pass the queue's byte bound.
    held_max = OUTBOUND_QUEUE_BYTES_MAX + _kernel_send_buffer_max() + TRANSPORT_BYTES_MAX
    rounds_min = int(FLOOD_MARGIN * held_max / snapshot_bytes) + 1
    probe.close()

    trader, _ = _funded([url], ("USDT", "10000000"))  # its orders go through the flooded node
    unloaded_ms = _p50_order_ms(trader, ORDERS_MEASURED)

    flooders = [_raw_ws(url, f"127.0.1.{1 + i}") for i in range(FLOOD_CONNECTIONS)]
    frame = _client_frame(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1}))
    stop = threading.Event()
    pace = threading.Event()  # never set

    rounds = 0

    def flood() -> None:
        nonlocal rounds
        while not stop.is_set() or rounds < rounds_min:
            rounds += 1
            for s in flooders:
                try:
                    s.sendall(frame)
                except OSError:  # closed by the node, or our send buffer is full
                    pass
            pace.wait(FLOOD_INTERVAL_S)  # the inbound rate, not a condition

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    try:
        loaded_ms = _p50_order_ms(trader, ORDERS_MEASURED)
    finally:
        stop.set()
        flooding.join()

    # Every flooder is closed as a slow consumer once its queue passes the
    # byte bound: read here up to the close frame (it comes after what the
    # sockets held; or the connection ends, if the node gave up waiting to
    # send it), and the node logged why.
    closes = []
    for s in flooders:
        closes.append(_close_of(s))
        s.close()
    assert "open" not in closes, closes
    assert all(c == "ended" or c[0] == CLOSE_POLICY_VIOLATION for c in closes), closes
    log_text = local.log_path(cluster.cfg, node).read_text(errors="replace")
    for i in range(FLOOD_CONNECTIONS):
        assert f"consumer at 127.0.1.{1 + i}: slow consumer: " in log_text and f"the limit is {OUTBOUND_QUEUE_BYTES_MAX}" in log_text

    # Unloaded again (the flooders are gone): the machine is shared, so the
    # baseline is the slower of before and after.
    after_ms = _p50_order_ms(trader, ORDERS_MEASURED)
    print(f"order p50: {unloaded_ms:.1f} ms before, {loaded_ms:.1f} ms under the flood of {FLOOD_CONNECTIONS} connections, {after_ms:.1f} ms after")
    assert loaded_ms <= LATENCY_RATIO_MAX * max(unloaded_ms, after_ms), (unloaded_ms, loaded_ms, after_ms)
    maker.close()
    trader.close()


# ----------------------------------------------- the hub in-process (logic)

def test_a_depth_snapshot_is_rendered_once_per_block_whoever_asks() -> None:
    from dex.api.streams import Conn, Hub
    from dex.core.commands import Deposit, PlaceOrder
    from dex.core.types import Side
    from tests.api.test_streams import _apply_block, _drain, _fake_node

    node, _ = _fake_node()
    hub = Hub(node)
    hub.attach()
    node.block_listeners.append(hub.on_block)
    _apply_block(node, [Deposit(account=1, asset="USDT", amount=10**16)], 1)
    _apply_block(node, [PlaceOrder(account=1, symbol=SYMBOL, side=Side.BUY, price=4_000_000 + i, qty=1000) for i in range(50)], 2)
    conns = [Conn(None, 1000, f"10.0.0.{i}") for i in range(10)]
    for conn in conns:
        assert hub.admit(conn) is None
        for _ in range(3):  # re-SUBSCRIBEs too
            hub.subscribe(conn, ["btcusdt@depth"])
    assert hub.snapshots.renders == 1
    texts = {conn.queue.get_nowait() for conn in conns}
    assert len(texts) == 1 and json.loads(texts.pop())["data"]["lastUpdateId"] == node.replica.height == 2

    _apply_block(node, [PlaceOrder(account=1, symbol=SYMBOL, side=Side.BUY, price=3_000_000, qty=1000)], 3)
    late = Conn(None, 1000, "10.0.1.1")
    assert hub.admit(late) is None
    hub.subscribe(late, ["btcusdt@depth"])
    snapshot = _drain(late)[0]["data"]
    assert hub.snapshots.renders == 2
    assert snapshot["lastUpdateId"] == 3 and ["30000.00", "0.01000"] in snapshot["bids"] and len(snapshot["bids"]) == 51


def test_admission_counts_each_address_and_frees_a_place_when_a_connection_goes() -> None:
    from dex.api.streams import Conn, Hub
    from tests.api.test_streams import _fake_node

    node, _ = _fake_node()
    hub = Hub(node)
    held = [Conn(None, 10, "10.0.0.1") for _ in range(CONNECTIONS_PER_ADDRESS_MAX)]
    for conn in held:
        assert hub.admit(conn) is None
    assert "per source address" in hub.admit(Conn(None, 10, "10.0.0.1"))
    assert hub.admit(Conn(None, 10, "10.0.0.2")) is None
    hub.forget(held[0])
    hub.forget(held[0])  # twice is harmless
    assert hub.by_address["10.0.0.1"] == CONNECTIONS_PER_ADDRESS_MAX - 1
    assert hub.admit(Conn(None, 10, "10.0.0.1")) is None


def test_a_connection_over_the_byte_bound_is_closed_whatever_its_message_count() -> None:
    import asyncio

    from dex.api.streams import Conn, Hub
    from tests.api.test_streams import _fake_node

    node, _ = _fake_node()
    hub = Hub(node)
    message = "x" * (64 * 1024)

    async def run() -> Conn:
        conn = Conn(None, 10_000, "10.0.0.1")  # room for 10,000 messages: the count is not what stops it
        assert hub.admit(conn) is None
        for _ in range(OUTBOUND_QUEUE_BYTES_MAX // len(message)):
            hub.put(conn, message)
        assert not conn.closed and conn.queued_bytes == OUTBOUND_QUEUE_BYTES_MAX
        hub.put(conn, "y")
        await conn.done.wait()
        return conn

    conn = asyncio.run(run())
    assert conn.closed and hub.slow_closed == 1 and conn not in hub.conns
