"""Benchmark of `dex audit`: how long re-deriving a chain of N orders takes.

Builds a chain directly through the codec, dex.ledger.state.apply_proposal
and Chain.append (no cluster: the leader's and replica's per-block work,
without Raft), made of signed requests exactly as the API turns them into
commands, then times `python -m dex.cli audit --data DIR --no-store --json`
over it as a subprocess (interpreter start, the signature pool and the final
report included).

Workload on BTCUSDT, 1,000 funded accounts (Ed25519 keys from fixed seeds),
the mid doing a random walk (one tick on 20% of orders); each order is

    45%  a passive GTC limit order 1-50 ticks from the mid
    45%  an aggressive GTC limit order crossing 0-20 ticks through the touch
         (as it stood at the start of the block; what does not fill rests)
    10%  a market order by base quantity

(as many takers as makers, so the book stays bounded without cancels)

of 1-100 lots. Two variants:

    single  one signature per request: POST /api/v1/order per order, and 1
            cancel (DELETE /api/v1/order, by the owner, of an order accepted
            in an earlier block) per 9 orders
    batch   POST /api/v1/batchOrders: 100 orders of one account per signature

Blocks are filled as the leader's builder fills them: at most
block_commands_max (256) commands and block_bytes_max (32 KiB) bytes.
`orders` in the output counts the workload's commands (orders and cancels;
not the funding deposits); orders_per_s = orders / seconds of the audit.

Usage:
    python bench/audit.py [--orders 1000000] [--variant both|single|batch]
                          [--dir DIR] [--jobs N] [--seed 1] [--json]

--dir keeps the built chains (DIR/single, DIR/batch) and reuses one whose
meta.json matches the parameters; otherwise they go in a temporary directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine import LoadProbe  # noqa: E402 (bench/engine.py)
from machine import describe  # noqa: E402 (bench/machine.py, beside this script)
from dex.auth import Keypair, signed_payload  # noqa: E402
from dex.config import BLOCK_BYTES_MAX_DEFAULT, BLOCK_COMMANDS_MAX_DEFAULT  # noqa: E402
from dex.core import limits  # noqa: E402
from dex.core.commands import CancelOrder, Deposit, PlaceOrder  # noqa: E402
from dex.core.events import OrderAccepted  # noqa: E402
from dex.core.markets import load_markets, units_to_amount  # noqa: E402
from dex.core.types import OrderType, Side  # noqa: E402
from dex.engine import Engine  # noqa: E402
from dex.ledger.chain import Chain  # noqa: E402
from dex.ledger.codec import (  # noqa: E402
    AUTH_OVERHEAD_BYTES,
    COMMAND_OVERHEAD_BYTES,
    GENESIS_PARENT,
    PROPOSAL_OVERHEAD_BYTES,
    Auth,
    assemble_proposal,
    decode_proposal,
    encode_auth,
    encode_command,
)
from dex.ledger.replay import ReplayGuard  # noqa: E402
from dex.ledger.state import apply_proposal  # noqa: E402

CONFIG = REPO / "configs" / "local-4.toml"
MARKETS = REPO / "configs" / "markets.toml"
SYMBOL = "BTCUSDT"
ACCOUNTS = 1_000
BATCH = 100
CANCEL_EVERY = 10  # single variant: every 10th request is a cancel
MID_STEP_P = 0.2
PASSIVE_MAX = 50
CROSS_MAX = 20
QTY_MAX = 100
CANDIDATES_MAX = 100_000  # orders remembered for cancels
TIME_MS_START = 1_700_000_000_000
BLOCK_MS = 5
AUDIT_TIMEOUT_S = 3600
META_VERSION = 1


class Workload:
    """Makes the signed requests, block by block, from a seeded RNG."""

    def __init__(self, seed: int, markets, variant: str) -> None:
        self.rng = random.Random(seed)
        self.variant = variant
        self.market = markets.market(SYMBOL)
        self.keys = [Keypair.from_private(hashlib.sha256(f"bench-audit {seed} {i}".encode()).digest()) for i in range(ACCOUNTS)]
        # A mid where a 1-lot order 50 ticks below still meets min_notional.
        lowest = -(-self.market.min_notional_units // self.market.notional_units)
        self.mid = max(10_000, (lowest * 105 // 100 + 1000) // 1000 * 1000)
        self.floor = lowest + 2 * (PASSIVE_MAX + CROSS_MAX)
        self.candidates: list[tuple[int, int]] = []  # (order id, key index)
        self.owner = {k.account: i for i, k in enumerate(self.keys)}
        self.time_ms = TIME_MS_START
        self.cid = 0

    def _sign(self, keys: Keypair, method: str, path: str, query: str, body: bytes) -> bytes:
        self.time_ms += 1
        payload = signed_payload(self.time_ms, method, path, query, body)
        return encode_auth(Auth(public_key=keys.public, timestamp_ms=self.time_ms, signature=keys.sign(payload), payload=payload))

    def funding(self) -> list[tuple[bytes, list]]:
        out = []
        for keys in self.keys:
            amount = limits.BALANCE_UNITS_MAX // (2 * ACCOUNTS)  # far more than the workload spends
            for asset in (self.market.base, self.market.quote):
                body = json.dumps({"asset": asset.name, "amount": units_to_amount(asset, amount)}, separators=(",", ":")).encode()
                out.append((self._sign(keys, "POST", "/api/v1/deposit", "", body), [Deposit(account=keys.account, asset=asset.name, amount=amount)]))
        return out

    def _order(self, account: int, best_bid: int | None, best_ask: int | None) -> tuple[dict, PlaceOrder]:
        rng, m = self.rng, self.market
        if rng.random() < MID_STEP_P:
            self.mid = max(self.floor + 1, self.mid + (1 if rng.random() < 0.5 else -1))
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = rng.randrange(1, QTY_MAX + 1)
        self.cid += 1
        cid = f"b{self.cid}"
        u = rng.random()
        if u < 0.9:
            if u < 0.45:
                d = rng.randrange(1, PASSIVE_MAX + 1)
                price = self.mid - d if side == Side.BUY else self.mid + d
            else:
                k = rng.randrange(0, CROSS_MAX + 1)
                price = ((best_ask or self.mid) + k) if side == Side.BUY else ((best_bid or self.mid) - k)
            body = {"symbol": SYMBOL, "side": side.name, "type": "LIMIT", "price": m.ticks_to_price(price), "quantity": m.lots_to_qty(qty), "newClientOrderId": cid}
            return body, PlaceOrder(account=account, symbol=SYMBOL, side=side, price=price, qty=qty, client_order_id=cid)
        body = {"symbol": SYMBOL, "side": side.name, "type": "MARKET", "quantity": m.lots_to_qty(qty), "newClientOrderId": cid}
        return body, PlaceOrder(account=account, symbol=SYMBOL, side=side, type=OrderType.MARKET, qty=qty, client_order_id=cid)

    def request(self, engine: Engine) -> tuple[bytes, list]:
        """One signed request and its commands, priced off the book as it stands."""
        rng = self.rng
        bids, asks = engine.depth(SYMBOL, 1)
        best_bid = bids[0][0] if bids else None
        best_ask = asks[0][0] if asks else None
        if self.variant == "batch":
            i = rng.randrange(ACCOUNTS)
            keys = self.keys[i]
            pairs = [self._order(keys.account, best_bid, best_ask) for _ in range(BATCH)]
            body = json.dumps({"batchOrders": [b for b, _ in pairs]}, separators=(",", ":")).encode()
            return self._sign(keys, "POST", "/api/v1/batchOrders", "", body), [c for _, c in pairs]
        if self.candidates and rng.randrange(CANCEL_EVERY) == 0:
            j = rng.randrange(len(self.candidates))
            oid, i = self.candidates[j]
            self.candidates[j] = self.candidates[-1]
            self.candidates.pop()
            keys = self.keys[i]
            query = f"symbol={SYMBOL}&orderId={oid}"
            return self._sign(keys, "DELETE", "/api/v1/order", query, b""), [CancelOrder(account=keys.account, symbol=SYMBOL, order_id=oid)]
        keys = self.keys[rng.randrange(ACCOUNTS)]
        body, cmd = self._order(keys.account, best_bid, best_ask)
        raw = json.dumps(body, separators=(",", ":")).encode()
        return self._sign(keys, "POST", "/api/v1/order", "", raw), [cmd]

    def remember(self, results: list) -> None:
        """Orders accepted in a block become cancel candidates (some will have filled)."""
        if self.variant != "single":
            return
        for events in results:
            first = events[0] if events else None
            if first is not None and first.__class__ is OrderAccepted and first.type == OrderType.LIMIT:
                if len(self.candidates) < CANDIDATES_MAX:
                    self.candidates.append((first.order_id, self.owner[first.account]))


def build(path: Path, orders: int, variant: str, seed: int) -> dict:
    """Write a chain of `orders` workload commands (after the funding) to `path`."""
    markets = load_markets(MARKETS)
    w = Workload(seed, markets, variant)
    engine = Engine(markets)
    guard = ReplayGuard()
    if path.exists():
        path.unlink()
    chain = Chain(path)
    parent, parent_hash = None, GENESIS_PARENT
    made = signatures = blocks = 0
    started = time.perf_counter()
    funding = w.funding()
    waiting: tuple[bytes, list] | None = None

    def next_request() -> tuple[bytes, list] | None:
        nonlocal made
        if funding:
            return funding.pop(0)
        if made >= orders:
            return None
        auth, commands = w.request(engine)
        commands = commands[: orders - made]
        made += len(commands)
        return auth, commands

    while True:
        auths: list[bytes] = []
        encoded: list[tuple[int, bytes]] = []
        size = PROPOSAL_OVERHEAD_BYTES
        while True:
            item = waiting if waiting is not None else next_request()
            waiting = None
            if item is None:
                break
            auth, commands = item
            raw = [encode_command(c) for c in commands]
            cost = len(auth) + sum(len(r) + COMMAND_OVERHEAD_BYTES for r in raw)
            if encoded and (len(encoded) + len(raw) > BLOCK_COMMANDS_MAX_DEFAULT or size + cost > BLOCK_BYTES_MAX_DEFAULT):
                waiting = item
                break
            encoded.extend((len(auths), r) for r in raw)
            auths.append(auth)
            size += cost
        if not encoded:
            break
        w.time_ms += BLOCK_MS
        proposal_bytes = assemble_proposal(leader="n1", term=1, time_ms=w.time_ms, auths=auths, commands=encoded)
        proposal, leaves = decode_proposal(proposal_bytes)
        header, results_encoded, results = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
        parent_hash = chain.append(header, proposal_bytes, b"".join(results_encoded))
        parent = header
        w.remember(results)
        signatures += len(auths)
        blocks += 1
    chain.close()
    assert AUTH_OVERHEAD_BYTES > 0
    return {
        "version": META_VERSION,
        "variant": variant,
        "orders": made,
        "seed": seed,
        "blocks": blocks,
        "signatures": signatures,
        "funding_commands": 2 * ACCOUNTS,
        "chain_bytes": path.stat().st_size,
        "state_hash": parent.state_hash.hex() if parent else "",
        "resting_at_end": engine.books[SYMBOL].order_count,
        "build_s": round(time.perf_counter() - started, 2),
    }


def run_audit(directory: Path, jobs: int | None) -> tuple[float, dict, str]:
    args = [sys.executable, "-m", "dex.cli", "audit", "--config", str(CONFIG), "--data", str(directory), "--no-store", "--json"]
    if jobs is not None:
        args += ["--jobs", str(jobs)]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    probe = LoadProbe()
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=AUDIT_TIMEOUT_S, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dex audit failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    report["cpu_s"] = report["mainCpuS"] + report["poolCpuS"]  # the audit and its signature pool
    report["others_cpus"] = probe.others()
    return seconds, report, proc.stderr


def _idle_estimate(report: dict) -> float | None:
    main = report.get("mainCpuS")
    if main is None:
        return None
    cores = len(os.sched_getaffinity(0))
    return round(max(main, report["cpu_s"] / cores), 2)


def one_variant(root: Path, variant: str, orders: int, seed: int, jobs: int | None) -> dict:
    directory = root / variant
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    wanted = {"version": META_VERSION, "variant": variant, "orders": orders, "seed": seed}
    if meta is None or any(meta.get(k) != v for k, v in wanted.items()) or not (directory / "blocks.dat").exists():
        meta = build(directory / "blocks.dat", orders, variant, seed)
        meta_path.write_text(json.dumps(meta, indent=2))
    seconds, report, _ = run_audit(directory, jobs)
    assert report["ok"], report["problems"]
    assert report["commands"] == meta["orders"] + meta["funding_commands"], (report["commands"], meta)
    return {
        "variant": variant,
        "orders": meta["orders"],
        "seconds": round(seconds, 2),
        "orders_per_s": round(meta["orders"] / seconds),
        "audit_elapsed_s": report["elapsedS"],
        "cpu_s": round(report["cpu_s"], 2),
        "main_cpu_s": report.get("mainCpuS"),
        # What an otherwise idle machine of `nproc` cores would take: the
        # replay is one process, the signature checks spread over the rest.
        "idle_estimate_s": _idle_estimate(report),
        "others_cpus_meanwhile": round(report["others_cpus"], 2),
        "blocks": report["blocks"],
        "signatures": report["signatures"],
        "trades": report["trades"],
        "chain_mb": round(meta["chain_bytes"] / 1e6, 1),
        "resting_at_end": meta["resting_at_end"],
        "build_s": meta["build_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=("both", "single", "batch"), default="both")
    parser.add_argument("--dir", default=None, help="keep (and reuse) the built chains here")
    parser.add_argument("--jobs", type=int, default=None, help="dex audit --jobs (default: one per core)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.orders < 1:
        parser.error("--orders must be >= 1")
    variants = ("batch", "single") if args.variant == "both" else (args.variant,)
    with tempfile.TemporaryDirectory(prefix="dex-bench-audit-") as tmp:
        root = Path(args.dir) if args.dir else Path(tmp)
        runs = [one_variant(root, v, args.orders, args.seed, args.jobs) for v in variants]
    out = {"machine": describe(), "runs": runs}
    # The headline figures: the first variant run (batch when both).
    out.update(orders=runs[0]["orders"], seconds=runs[0]["seconds"], orders_per_s=runs[0]["orders_per_s"])
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in runs:
            print(f"{r['variant']:>6}: {r['orders']:,} orders, {r['blocks']:,} blocks, {r['signatures']:,} signatures, "
                  f"{r['trades']:,} trades, {r['chain_mb']} MB: dex audit {r['seconds']} s = {r['orders_per_s']:,} orders/s "
                  f"(built in {r['build_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
