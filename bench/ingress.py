"""What the leader spends on a batch order's way in and out, short of HTTP:
parsing the signed body, translating each order into a command, and
rendering each order's answer from its events.

The leader does this for every order of the cluster (a follower forwards the
signed bytes unchanged: dex/api/channel.py), on its event loop's thread. The
bodies are the cluster benchmark's `--batch` bodies (bench/cluster.py
place_batch: 100 orders of one account, LIMIT, prices around a fixed mid,
each with a client order id), applied to an engine so that the answers are
rendered from real events (passive orders rest, crossing ones trade).

    .venv/bin/python bench/ingress.py                       # 300 batches of 100, ACK answers, 5 runs
    .venv/bin/python bench/ingress.py --resp-type FULL --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.append(str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402 (bench/machine.py)
from dex.api import render  # noqa: E402
from dex.core.commands import Deposit  # noqa: E402
from dex.core.events import Trade  # noqa: E402
from dex.core.markets import load_markets  # noqa: E402
from dex.engine import IMPLEMENTATION, Engine  # noqa: E402
from dex.ledger import translate  # noqa: E402

ACCOUNTS = 10  # a body is one account's (bench/cluster.py), bodies rotate through these: orders of different accounts cross
SPREAD_TICKS = 500


def bodies(market, batches: int, batch: int, resp_type: str, seed: int) -> list[bytes]:
    """Signed bodies as bench/cluster.py's place_batch writes them."""
    rng = random.Random(seed)
    mid = market.max_price_ticks // 2
    out = []
    for b in range(batches):
        orders = []
        for i in range(batch):
            ticks = mid + rng.randint(-SPREAD_TICKS, SPREAD_TICKS)
            side = "BUY" if rng.random() < 0.5 else "SELL"
            orders.append(
                f'{{"symbol":"{market.symbol}","side":"{side}","type":"LIMIT","timeInForce":"GTC",'
                f'"price":"{market.ticks_to_price(ticks)}","quantity":"{market.lots_to_qty(rng.randint(1, 20) * market.min_qty_lots)}",'
                f'"newClientOrderId":"c{b}-{i}","newOrderRespType":"{resp_type}"}}'
            )
        out.append(('{"batchOrders":[' + ",".join(orders) + "]}").encode())
    return out


def run(config, market, data: list[bytes]) -> dict:
    """(seconds spent in each step over every body, on a fresh engine;
    orders answered with an order id; trades)."""
    engine = Engine(config)
    for account in range(1, ACCOUNTS + 1):
        for asset in (market.base, market.quote):
            engine.apply(Deposit(account=account, asset=asset.name, amount=2**58), 0)
    signature = bytes(64)
    block_hash = bytes(32)
    clock = time.thread_time
    spent = dict.fromkeys(("parse", "commands", "render"), 0.0)
    answered = trades = 0
    for height, body in enumerate(data, 1):
        c0 = clock()
        batch = translate.parse(translate.BatchOrders, body)
        c1 = clock()
        entries = translate.batch_commands(config, batch, 1 + height % ACCOUNTS, signature)
        c2 = clock()
        results = [engine.apply(cmd, height) for _, cmd in entries]
        c3 = clock()
        for (m, _), order, events in zip(entries, batch.batchOrders, results):
            answer = render.order_result(m, events[0], events, height, height, block_hash, order.newOrderRespType)
            answered += "orderId" in answer
        c4 = clock()
        trades += sum(ev.__class__ is Trade for events in results for ev in events)
        spent["parse"] += c1 - c0
        spent["commands"] += c2 - c1
        spent["render"] += c4 - c3
    return spent, answered, trades


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch", type=int, default=100, help=f"orders a body (1..{translate.BATCH_ORDERS_MAX})")
    p.add_argument("--resp-type", choices=("ACK", "RESULT", "FULL"), default="ACK", help="newOrderRespType (the cluster benchmark's: ACK)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--market", default="BTCUSDT")
    p.add_argument("--config", default=str(REPO / "configs" / "markets.toml"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.batches < 1 or args.runs < 1 or not 1 <= args.batch <= translate.BATCH_ORDERS_MAX:
        p.error(f"--batches and --runs must be positive, --batch 1..{translate.BATCH_ORDERS_MAX}")
    config = load_markets(args.config)
    market = config.market(args.market)
    data = bodies(market, args.batches, args.batch, args.resp_type, args.seed)
    orders = args.batches * args.batch
    measured = [run(config, market, data) for _ in range(args.runs)]
    runs = [spent for spent, _, _ in measured]
    _, answered, trades = measured[-1]
    result = {
        "orders": orders,
        "resp_type": args.resp_type,
        "engine": IMPLEMENTATION,
        "answered": answered,  # orders answered with an order id (accepted), of the last run
        "trades_per_order": round(trades / orders, 3),  # crossing orders trade: their answers read fills
        **{f"{step}_us_per_order": round(statistics.median(r[step] for r in runs) * 1e6 / orders, 3) for step in runs[0]},
        "runs_us_per_order": [{step: round(s * 1e6 / orders, 3) for step, s in r.items()} for r in runs],
        "machine": describe(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}")
        print(f"{orders:,} orders in bodies of {args.batch}, {args.resp_type} answers; CPU µs an order (median of {args.runs}):")
        for step in runs[0]:
            print(f"  {step:9s} {result[f'{step}_us_per_order']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
