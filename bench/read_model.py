"""What a node's order history (dex/api/history.py) costs a block: every
node feeds it every event of every block it applies.

The events are those of bench/engine.py's block-apply workload (its
commands in blocks of `--block-orders`, applied by the engine the process
runs); `History.on_block` is then timed over all of them, in CPU time, with
the garbage collector set as a node sets it (dex.node.tune_gc: start-up's
objects frozen, full collections rare). A fresh History each run.

The stream hub (dex/api/streams/hub.py) is timed twice: following every
block (as while a client is connected; `hub_us_per_order`) and idle (nobody
connected for its idle delay, so it stops following; `hub_idle_us_per_order`).

    .venv/bin/python bench/read_model.py                  # 200,000 orders, 5 runs
    .venv/bin/python bench/read_model.py --orders 20000 --runs 1 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import engine as engine_bench  # noqa: E402 (bench/engine.py, beside this script; it puts the repo first on sys.path)

from contextlib import contextmanager  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from dex.api.history import History  # noqa: E402
from dex.api.streams.hub import Hub  # noqa: E402
from dex.ledger.port import LedgerView  # noqa: E402
from dex.core.markets import load_markets  # noqa: E402
from dex.engine import IMPLEMENTATION  # noqa: E402
from dex.ledger.codec import GENESIS_PARENT, decode_proposal  # noqa: E402
from dex.ledger.replay import ReplayGuard  # noqa: E402
from dex.ledger.state import apply_proposal  # noqa: E402
from dex.node import tune_gc  # noqa: E402
from machine import describe  # noqa: E402


def applied_blocks(config, funding, proposals: list[bytes], on_block=None, on_start=None) -> tuple[list, int, float]:
    """Apply the proposals to a fresh engine (given to `on_start` first):
    [(header, block hash, proposal, results)], the events, and the CPU
    seconds `on_block(engine, height, *block)` took after each block."""
    engine = engine_bench.fresh_engine(config, funding)
    if on_start is not None:
        on_start(engine)
    guard = ReplayGuard()
    parent, parent_hash, out, events, spent = None, GENESIS_PARENT, [], 0, 0.0
    for data in proposals:
        proposal, leaves = decode_proposal(data)
        parent, _, results = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
        parent_hash = parent.hash
        block = (parent, parent_hash, proposal, results)
        out.append(block)
        events += sum(len(r) for r in results)
        if on_block is not None:
            c0 = time.thread_time()
            on_block(engine, parent.height, *block)
            spent += time.thread_time() - c0
    return out, events, spent


class StreamsNode:
    """What the hub reads of a node: its config, a port whose view() reads
    the engine as a LedgerView, its History; no event loop (no connections)."""

    def __init__(self, config, engine_ref: list) -> None:
        self.cfg = SimpleNamespace(markets=config, stream_queue_max=4096)
        self.history = History(config)
        self.loop = None
        self.node_id = "n1"
        self.port = self
        self._engine_ref = engine_ref  # [engine, height], set before each call

    @contextmanager
    def view(self):
        engine, height = self._engine_ref
        yield LedgerView(engine, height)


def hub_run(config, funding, proposals: list[bytes], idle: bool = False) -> float:
    """CPU seconds of Hub.on_block over the workload (attached at height 0):
    following every block, or (`idle`) with its idle delay 0, so that it
    stops following at the first block (no client ever connects here)."""
    state: list = [None, 0]
    hub = Hub(StreamsNode(config, state))
    hub.idle_s = 0.0 if idle else float("inf")

    def start(engine):
        state[0] = engine
        hub.attach()  # the funded book (empty) at height 0, as a node attaches at start-up

    def feed(engine, height, header, block_hash, proposal, results):
        state[1] = height
        hub.on_block(header, block_hash, proposal, results)

    return applied_blocks(config, funding, proposals, feed, start)[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--block-orders", type=int, default=100)
    p.add_argument("--market", default="BTCUSDT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--config", default=str(HERE.parent / "configs" / "markets.toml"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.orders < 1 or args.runs < 1 or not 1 <= args.block_orders <= 4096:
        p.error("--orders, --runs and --block-orders must be positive (--block-orders at most 4096)")
    config = load_markets(args.config)
    funding = engine_bench.deposits(config, config.market(args.market), engine_bench.ACCOUNTS)
    w = engine_bench.generate(config, args.market, args.orders, args.seed, funding, None)
    proposals = engine_bench.proposals(w.cmds, args.block_orders)
    blocks, events, _ = applied_blocks(config, funding, proposals)
    tune_gc()
    hub_runs = [hub_run(config, funding, proposals) * 1e6 / args.orders for _ in range(args.runs)]
    idle_runs = [hub_run(config, funding, proposals, idle=True) * 1e6 / args.orders for _ in range(args.runs)]
    runs = []
    for _ in range(args.runs):
        history = History(config)
        gc.collect()
        c0 = time.thread_time()
        for header, block_hash, proposal, results in blocks:
            history.on_block(header, block_hash, proposal, results)
        runs.append((time.thread_time() - c0) * 1e6 / args.orders)
        del history
    result = {
        "orders": args.orders,
        "blocks": len(blocks),
        "events_per_order": round(events / args.orders, 3),
        "engine": IMPLEMENTATION,
        "history_us_per_order": round(statistics.median(runs), 3),
        "history_us_per_order_runs": [round(r, 3) for r in runs],
        "hub_us_per_order": round(statistics.median(hub_runs), 3),
        "hub_us_per_order_runs": [round(r, 3) for r in hub_runs],
        "hub_idle_us_per_order": round(statistics.median(idle_runs), 3),
        "hub_idle_us_per_order_runs": [round(r, 3) for r in idle_runs],
        "machine": describe(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m = result["machine"]
        print(f"machine: {m['cpu']}, nproc {m['nproc']}, {m['python']}")
        print(f"{args.orders:,} orders in {len(blocks):,} blocks, {result['events_per_order']} events an order ({IMPLEMENTATION} engine)")
        print(f"History.on_block: {result['history_us_per_order']} us of CPU an order (median of {args.runs}: {result['history_us_per_order_runs']})")
        print(f"Hub.on_block:     {result['hub_us_per_order']} us of CPU an order (median of {args.runs}: {result['hub_us_per_order_runs']})")
        print(f"  idle (no client): {result['hub_idle_us_per_order']} us of CPU an order (median of {args.runs}: {result['hub_idle_us_per_order_runs']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
