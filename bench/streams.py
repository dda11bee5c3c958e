"""Benchmark: does a WebSocket attack on one node slow another client's orders
through it? (Issue 11's target: p50 under the attack <= 2x unloaded.)

Starts a four-node cluster on loopback (tests.cluster.harness: its own
config, free ports, data in a temp dir; always torn down), builds a book of
--levels price levels a side on BTCUSDT, then measures one client's order
latency (POST /api/v1/order through --node, request to 200, p50 of --orders
passive limit orders) three times:

    unloaded    nothing else on the node
    attacked    while --flood connections (default 20, from 127.0.1.x)
                re-SUBSCRIBE to the depth stream 10 times a second (the
                inbound bound), never read, and connect again when the node
                closes them; and --idle connections (default 1,000, opened
                after the flooders) are held idle against the node, from
                127.0.2.x loopback aliases (CONNECTIONS_PER_ADDRESS_MAX each,
                so the per-address cap does not refuse them; the node's own
                cap, CONNECTIONS_PER_NODE_MAX, refuses the rest)
    after       the attackers gone

and prints attacked / unloaded and attacked / max(unloaded, after) (the
machine is shared: the baseline is the slower quiet one). It also reports
how many idle connections the node took and whether a fresh client (another
address) could still open a stream during the attack (the lockout question).

Usage:
    python bench/streams.py                    # --idle 1000 --flood 20 --orders 40
    python bench/streams.py --json

Run it under the shared lock: `flock /work/bench.lock python bench/streams.py`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() not in (HERE, REPO)]
sys.path.insert(0, str(REPO))

from dex.api.streams.wire import CONNECTIONS_PER_ADDRESS_MAX, INBOUND_PER_S  # noqa: E402
from dex.auth import Keypair  # noqa: E402
from dex.client import Client  # noqa: E402
from dex.config import SECRET_ENV  # noqa: E402
from tests.cluster.harness import Cluster  # noqa: E402

sys.path.append(str(HERE))
from machine import describe  # noqa: E402 (bench/machine.py)

SYMBOL = "BTCUSDT"
RCVBUF_SMALL = 4096
CONNECT_TIMEOUT_S = 5.0
RATIO_TARGET_MAX = 2.0


def log(args, msg: str) -> None:
    if not args.quiet:
        print(f"  .. {msg}", file=sys.stderr, flush=True)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def raw_ws(url: str, source: str) -> tuple[socket.socket | None, str]:
    """A WebSocket upgrade by hand from `source`: (socket, "101") when the
    node took it, (None, what it answered) when it did not."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_SMALL)
    s.settimeout(CONNECT_TIMEOUT_S)
    try:
        s.bind((source, 0))
        s.connect(host_port(url))
        host, port = host_port(url)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            if not chunk:
                s.close()
                return None, "closed"
            head += chunk
    except OSError as e:
        s.close()
        return None, type(e).__name__
    status = head.split(b" ", 2)[1].decode(errors="replace") if head.startswith(b"HTTP/") else "?"
    if status != "101":
        s.close()
        return None, status
    # The node may accept the upgrade and close at once (its cap): a close
    # frame arrives within a moment. An idle connection sends nothing.
    s.settimeout(0.05)
    try:
        first = s.recv(2)
        if first == b"" or (first and first[0] & 0x0F == 0x8):
            s.close()
            return None, "closed-after-upgrade"
    except (TimeoutError, BlockingIOError):
        pass
    except OSError as e:
        s.close()
        return None, type(e).__name__
    s.settimeout(1.0)
    return s, "101"


def client_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def p50_order_ms(client: Client, count: int, price: str) -> float:
    took = []
    for _ in range(count):
        start = time.perf_counter()
        client.place_order(SYMBOL, "BUY", price=price, quantity="0.00100")
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=int, default=1000, help="idle WebSocket connections opened against the node")
    p.add_argument("--flood", type=int, default=20, help="connections re-subscribing to depth and never reading")
    p.add_argument("--levels", type=int, default=1000, help="price levels a side in the book (the snapshot's size)")
    p.add_argument("--orders", type=int, default=40, help="orders timed per phase")
    p.add_argument("--node", type=int, default=1, help="index of the attacked node (its orders are forwarded unless it leads)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    os.environ.pop(SECRET_ENV, None)
    workdir = Path(tempfile.mkdtemp(prefix="dex-bench-streams-"))
    cluster = Cluster.create(workdir / "cluster", name="bench-streams")
    result: dict = {"machine": describe(), "idle": args.idle, "flood": args.flood, "levels": args.levels, "orders": args.orders}
    idle: list[socket.socket] = []
    flooders: list[socket.socket] = []
    try:
        log(args, f"starting 4 nodes ({workdir})")
        cluster.up()
        node = cluster.ids[args.node]
        url = cluster.url(node)
        result["node"] = node
        result["node_leads"] = cluster.wait_leader() == node
        maker = Client(cluster.urls, Keypair.generate())
        maker.deposit("USDT", "40000000")
        maker.deposit("BTC", "100")
        for side, low in (("BUY", 30000), ("SELL", 70000)):
            for first in range(0, args.levels, 100):
                maker.batch_orders([{"symbol": SYMBOL, "side": side, "type": "LIMIT", "price": f"{low + j}.00", "quantity": "0.00100"}
                                    for j in range(first, min(first + 100, args.levels))])
        trader = Client([url], Keypair.generate())  # its orders go through the attacked node only
        trader.deposit("USDT", "10000000")
        p50_order_ms(trader, 5, "20000.00")  # warm the connection
        log(args, "unloaded")
        result["unloaded_p50_ms"] = round(p50_order_ms(trader, args.orders, "20000.00"), 2)

        # The flooders first: opened after the idle ones they would find the
        # node's cap taken (CONNECTIONS_PER_NODE_MAX) and never flood.
        flood_sources = [f"127.0.1.{1 + i}" for i in range(args.flood)]
        for source in flood_sources:
            s, what = raw_ws(url, source)
            flooders.append(s)
        result["flooders_connected"] = sum(s is not None for s in flooders)
        log(args, f"opening {args.idle} idle connections")
        outcomes: dict[str, int] = {}
        for i in range(args.idle):
            a = i // CONNECTIONS_PER_ADDRESS_MAX
            s, what = raw_ws(url, f"127.0.2.{1 + a % 250}" if a < 250 else f"127.0.3.{1 + a - 250}")
            outcomes[what] = outcomes.get(what, 0) + 1
            if s is not None:
                idle.append(s)
        result["idle_outcomes"] = outcomes
        fresh, fresh_what = raw_ws(url, "127.0.4.1")  # another client (the dashboard) during the attack
        result["fresh_client_during_attack"] = fresh_what
        if fresh is not None:
            fresh.close()

        frame = client_frame(json.dumps({"method": "SUBSCRIBE", "params": [f"{SYMBOL.lower()}@depth"], "id": 1}))
        stop = threading.Event()
        pace = threading.Event()  # never set: waits are the inbound rate, not a condition
        reconnects = [0]

        def flood() -> None:
            """Every flooder re-SUBSCRIBEs INBOUND_PER_S times a second and
            never reads; one the node closed (a slow consumer) connects again."""
            while not stop.is_set():
                for i, s in enumerate(flooders):
                    if s is None:
                        s, _ = raw_ws(url, flood_sources[i])
                        flooders[i] = s
                        reconnects[0] += 1
                        if s is None:
                            continue
                    try:
                        s.sendall(frame)
                    except TimeoutError:  # our send buffer is full: the node is not reading us either
                        pass
                    except OSError:  # closed by the node
                        s.close()
                        flooders[i] = None
                pace.wait(1.0 / INBOUND_PER_S)

        flooding = threading.Thread(target=flood, daemon=True)
        flooding.start()
        log(args, f"attacked ({len(idle)} idle held, {result['flooders_connected']} flooding)")
        try:
            result["attacked_p50_ms"] = round(p50_order_ms(trader, args.orders, "20000.00"), 2)
        finally:
            stop.set()
            flooding.join()
        result["flood_reconnects"] = reconnects[0]
        for s in idle + flooders:
            if s is not None:
                s.close()
        idle.clear()
        flooders.clear()
        log(args, "after")
        result["after_p50_ms"] = round(p50_order_ms(trader, args.orders, "20000.00"), 2)
        trader.close()
        maker.close()
    finally:
        for s in idle + flooders:
            if s is not None:
                s.close()
        cluster.close()
    base = max(result["unloaded_p50_ms"], result["after_p50_ms"])
    result["ratio_vs_unloaded"] = round(result["attacked_p50_ms"] / result["unloaded_p50_ms"], 2)
    result["ratio_vs_quiet_max"] = round(result["attacked_p50_ms"] / base, 2)
    result["target_ratio_max"] = RATIO_TARGET_MAX
    if args.json:
        print(json.dumps(result))
    else:
        m = result["machine"]
        print(f"machine: {m['cpu'] + ', ' + m['python'] + ', ' + str(m['nproc']) + ' CPUs'}; node {result['node']} (leader: {result['node_leads']})")
        print(f"idle connections: {result['idle_outcomes']}; flooders connected {result['flooders_connected']}, "
              f"reconnected {result['flood_reconnects']} times; a fresh client during the attack: {result['fresh_client_during_attack']}")
        print(f"order p50: unloaded {result['unloaded_p50_ms']} ms, attacked {result['attacked_p50_ms']} ms, after {result['after_p50_ms']} ms")
        print(f"attacked / unloaded = {result['ratio_vs_unloaded']}; attacked / max(unloaded, after) = {result['ratio_vs_quiet_max']} "
              f"(target <= {RATIO_TARGET_MAX})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
