"""Benchmark of the matching engine on one market.

Throughput mode (default). A seeded workload of --orders commands:

    55%  passive GTC limit orders, 1-50 ticks from the mid (buy below, sell above)
    30%  aggressive GTC limit orders crossing 0-20 ticks through the touch
         (a buy at best ask + k, a sell at best bid - k; priced from the mid
         when the other side is empty)
    10%  cancels of orders that are live at that point
     5%  market orders by base quantity (buy and sell)

with quantities of 1-100 lots, from 1,000 funded accounts, while the mid takes
a random walk (one tick up or down on 20% of commands). Self-trade prevention
is the default (EXPIRE_TAKER), so with 1,000 accounts some takers expire on
their own makers.

The workload is generated before anything is timed, by a generation pass that
applies each command to a fresh engine as it is made: that is how aggressive
orders find the touch and cancels find live orders. Order ids are a counter in
the engine's state, so replaying the same command list on a fresh engine (with
the same deposits, at the same block time) gives the same ids, the same
events and the same final state hash; the benchmark checks that every run
ends in the generation pass's hash.

Each timed run is `for cmd in cmds: apply(cmd, t)` on a fresh engine (deposits
applied untimed), with no per-command timing; orders_per_s is the median over
--runs of commands / seconds. A separate run times every command with
perf_counter_ns for p50/p99/p99.9/max latency. Peak memory is ru_maxrss of the
process (it includes the generated command list).

`--workload cluster` replaces that mix with the batch cluster benchmark's order
flow (bench/cluster.py --batch 100), which the mix above never exercises: 100
accounts; batches of 100 orders of one account, every order with a client
order id, either passive GTC 1-500 ticks off a fixed mid or IOC 100 ticks
through it (45% / 55% of batches, sides at random), 10-100 lots; and one
CancelAll of the account of the oldest resting order whenever more than 10,000
rest (a market maker's mass cancel, as the benchmark's DELETE /openOrders).
Every finished order then enters its account's dedup window (a SHA-256 term,
two once the window is full) and every mass cancel ends ~100 orders.

Resting mode (--resting N). Builds one book holding N resting passive orders
(both sides, spread over --levels price levels per side, from the same 1,000
accounts), generating the commands in chunks that are discarded, and measures:

    bytes_per_resting_order  (RSS after - RSS before) / N, RSS read from
                             /proc/self/statm after gc.collect() on both sides;
                             it is what the process really grows by, allocator
                             overhead and the accounts' `open` dicts included
    snapshot_s, restore_s    Engine.snapshot() and Engine.restore(config, bytes)
    snapshot_bytes           and checks the restored engine's state_hash.

Block-apply mode (--block-apply). What a node spends per order applying
committed blocks, on the batch benchmark's block shape (bench/cluster.py
--batch 100: one signed request of --block-orders commands a block). The same
workload is cut into blocks; each becomes a proposal as the leader builds it
(one Auth, compressed as Raft carries it); the timed loop is what
Replica.apply_block does short of the chain write: decode_proposal, then
dex.ledger.state.apply_proposal (the replay guard, the engine, encoding the
events, both Merkle roots, the state hash), then the block hash. A second,
untimed-as-a-whole pass times each phase on its own and must end in the same
block hash. Reported per order, for each implementation, interleaved.

Usage:
    python bench/engine.py [--orders 200000] [--runs 5] [--seed 1] [--workload cluster] [--json]
    python bench/engine.py --resting 1000000 [--json]
    python bench/engine.py --block-apply [--block-orders 100] [--orders 200000]
    python bench/engine.py --profile      # cProfile of one replay, top functions
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from machine import describe  # noqa: E402 (bench/machine.py, beside this script)
from dex.core import limits  # noqa: E402
from dex.core.commands import CancelAll, CancelOrder, Deposit, PlaceOrder  # noqa: E402
from dex.core.events import (  # noqa: E402
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    Trade,
)
from dex.core.markets import load_markets  # noqa: E402
from dex.core.types import OrderStatus, OrderType, Side, TimeInForce  # noqa: E402
from dex.engine import IMPLEMENTATION, Engine, load_compiled  # noqa: E402
from dex.engine import engine as pure_engine  # noqa: E402

ACCOUNTS = 1_000
# --workload cluster: bench/cluster.py --batch 100's order flow.
CLUSTER_ACCOUNTS = 100
CLUSTER_BATCH = 100
CLUSTER_PASSIVE_TICKS = 500  # passive orders 1..500 ticks off the fixed mid
CLUSTER_CROSS_TICKS = 100  # IOC orders this far through it
CLUSTER_PASSIVE_P = 0.55  # of batches (bench/cluster.py: max(cross_pct, 45)% cross)
CLUSTER_QTY = (10, 100)  # lots
CLUSTER_BOOK_TARGET = 10_000
BLOCK_TIME_MS = 1_700_000_000_000  # one constant block time: the hash depends on it
MID_STEP_P = 0.2  # probability that the mid moves one tick per command
PASSIVE_MAX = 50
CROSS_MAX = 20
QTY_MAX = 100

# Workload kinds (for per-kind latency).
PASSIVE, AGGRESSIVE, CANCEL, MARKET = 0, 1, 2, 3
KIND_NAMES = ("passive", "aggressive", "cancel", "market")

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MKT = OrderType.LIMIT, OrderType.MARKET
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
LIVE = OrderStatus.PARTIALLY_FILLED


# --------------------------------------------------------------------- setup


def implementations(which: str) -> dict:
    """name -> engine module to time: "both" (each one built here), "pure",
    "compiled" (fails if it is not built) or "default" (the one dex runs)."""
    compiled, why = load_compiled()
    if which == "default":
        return {IMPLEMENTATION: pure_engine if IMPLEMENTATION == "pure" else compiled}
    if which == "pure":
        return {"pure": pure_engine}
    if compiled is None:
        if which == "compiled":
            raise SystemExit(f"the compiled engine is not available: {why}")
        print(f"*** bench: the compiled engine is not available ({why}); timing the pure one only ***", file=sys.stderr)
        return {"pure": pure_engine}
    return {"pure": pure_engine} if which == "pure" else {"compiled": compiled} if which == "compiled" else {"pure": pure_engine, "compiled": compiled}


def deposits(config, market, accounts: int) -> list[Deposit]:
    """Each account gets an equal share of half the largest supply of both assets:
    far more than any workload here can lock or spend."""
    amount = limits.BALANCE_UNITS_MAX // (2 * accounts)
    cmds = []
    for a in range(1, accounts + 1):
        cmds.append(Deposit(account=a, asset=market.base.name, amount=amount))
        cmds.append(Deposit(account=a, asset=market.quote.name, amount=amount))
    return cmds


def fresh_engine(config, funding: list[Deposit], engine_class=None) -> Engine:
    engine = (engine_class or Engine)(config)
    for cmd in funding:
        events = engine.apply(cmd, BLOCK_TIME_MS)
        assert not isinstance(events[0], OrderRejected), events
    return engine


def min_price_for_one_lot(market) -> int:
    """Lowest price (ticks) at which one lot meets min_notional."""
    return -(-market.min_notional_units // market.notional_units)


def start_mid(market) -> int:
    """A mid where even a 1-lot order 50 ticks below it passes min_notional
    (BTCUSDT: 105,010.00 USDT)."""
    lo = min_price_for_one_lot(market)
    return max(10_000, (lo * 105 // 100 + 1000) // 1000 * 1000)


# ------------------------------------------------------------------ workload


class Workload:
    def __init__(self) -> None:
        self.cmds: list = []
        self.kinds: list[int] = []
        self.stats: dict = {}
        self.final_hash = ""
        self.resting_at_end = 0
        self.mid_start = 0
        self.mid_end = 0
        self.mid_min = 0
        self.mid_max = 0


def _new_counts() -> tuple[dict, dict, dict]:
    counts = {"accepted": 0, "rejected": 0, "trades": 0, "cancelled_user": 0, "cancelled_stp": 0,
              "expired": 0, "cancel_fallback_to_passive": 0}
    return counts, {}, {}


def _tally(counts: dict, rejected_by: dict, expired_by: dict, events: list, kind: int):
    """Count one command's events; return its OrderAccepted event, if any."""
    accepted = None
    for ev in events:
        t = ev.__class__
        if t is Trade:
            counts["trades"] += 1
        elif t is OrderAccepted:
            counts["accepted"] += 1
            accepted = ev
        elif t is OrderCancelled:
            counts["cancelled_user" if kind == CANCEL else "cancelled_stp"] += 1
        elif t is OrderExpired:
            counts["expired"] += 1
            expired_by[ev.reason.name] = expired_by.get(ev.reason.name, 0) + 1
        elif t is OrderRejected:
            counts["rejected"] += 1
            rejected_by[ev.reason.name] = rejected_by.get(ev.reason.name, 0) + 1
    return accepted


def _finish_workload(w: Workload, engine, symbol: str, counts: dict, rejected_by: dict, expired_by: dict, mid: int) -> Workload:
    counts["by_kind"] = {KIND_NAMES[k]: w.kinds.count(k) for k in range(4)}
    counts["rejected_by"] = rejected_by
    counts["expired_by"] = expired_by
    w.stats = counts
    w.mid_end = mid
    w.resting_at_end = engine.books[symbol].order_count
    w.final_hash = engine.state_hash()
    return w


def generate_cluster(config, symbol: str, n: int, seed: int, funding: list[Deposit], mid: int | None = None) -> Workload:
    """`n` commands (a batch is not cut short) of bench/cluster.py --batch 100's
    order flow (module docstring), applied to a generation engine as they are made."""
    rng = random.Random(seed)
    market = config.market(symbol)
    engine = fresh_engine(config, funding)
    mid = mid or start_mid(market)
    w = Workload()
    w.mid_start = w.mid_min = w.mid_max = mid
    counts, rejected_by, expired_by = _new_counts()
    apply = engine.apply
    resting: list[int] = []  # the account of each passive order accepted, oldest first
    seq = 0
    while len(w.cmds) < n:
        account = rng.randrange(1, CLUSTER_ACCOUNTS + 1)
        passive = rng.random() < CLUSTER_PASSIVE_P
        side = BUY if rng.random() < 0.5 else SELL
        kind = PASSIVE if passive else AGGRESSIVE
        for _ in range(CLUSTER_BATCH):
            seq += 1
            qty = rng.randint(*CLUSTER_QTY)
            if passive:
                off = rng.randint(1, CLUSTER_PASSIVE_TICKS)
                price, tif = (mid - off if side == BUY else mid + off), GTC
            else:
                price, tif = (mid + CLUSTER_CROSS_TICKS if side == BUY else mid - CLUSTER_CROSS_TICKS), IOC
            cmd = PlaceOrder(account=account, symbol=symbol, side=side, type=LIMIT, tif=tif, price=price, qty=qty,
                             client_order_id=f"b-{seq}")
            if _tally(counts, rejected_by, expired_by, apply(cmd, BLOCK_TIME_MS), kind) is not None and passive:
                resting.append(account)
            w.cmds.append(cmd)
            w.kinds.append(kind)
        while len(resting) > CLUSTER_BOOK_TARGET:
            oldest = resting[0]
            resting = [a for a in resting if a != oldest]
            cmd = CancelAll(account=oldest, symbol=symbol)
            _tally(counts, rejected_by, expired_by, apply(cmd, BLOCK_TIME_MS), CANCEL)
            w.cmds.append(cmd)
            w.kinds.append(CANCEL)
    return _finish_workload(w, engine, symbol, counts, rejected_by, expired_by, mid)


def workload(args, config, funding: list[Deposit]) -> Workload:
    """--workload's commands."""
    make = generate_cluster if args.workload == "cluster" else generate
    return make(config, args.market, args.orders, args.seed, funding, args.mid)


def workload_accounts(args) -> int:
    return CLUSTER_ACCOUNTS if args.workload == "cluster" else ACCOUNTS


def generate(config, symbol: str, n: int, seed: int, funding: list[Deposit], mid: int | None = None) -> Workload:
    """Make `n` commands, applying each to a generation engine as it is made."""
    rng = random.Random(seed)
    market = config.market(symbol)
    engine = fresh_engine(config, funding)
    mid = mid or start_mid(market)
    floor = min_price_for_one_lot(market) + 2 * (PASSIVE_MAX + CROSS_MAX)
    w = Workload()
    w.mid_start = w.mid_min = w.mid_max = mid
    cmds, kinds = w.cmds, w.kinds
    candidates: list[tuple[int, int]] = []  # (order id, account) that may be live
    counts, rejected_by, expired_by = _new_counts()
    randrange, random_ = rng.randrange, rng.random
    apply = engine.apply
    depth = engine.depth
    order_view = engine.order

    for _ in range(n):
        r = random_()
        if r < MID_STEP_P:
            mid += 1 if random_() < 0.5 else -1
            if mid < floor:
                mid = floor + 1
        w.mid_min = min(w.mid_min, mid)
        w.mid_max = max(w.mid_max, mid)
        account = randrange(1, ACCOUNTS + 1)
        qty = randrange(1, QTY_MAX + 1)
        side = BUY if random_() < 0.5 else SELL
        u = random_()
        cmd = None
        kind = PASSIVE
        if 0.55 <= u < 0.85:
            kind = AGGRESSIVE
            k = randrange(0, CROSS_MAX + 1)
            bids, asks = depth(symbol, 1)
            if side == BUY:
                price = (asks[0][0] if asks else mid) + k
            else:
                price = (bids[0][0] if bids else mid) - k
            cmd = PlaceOrder(account=account, symbol=symbol, side=side, type=LIMIT, tif=GTC, price=price, qty=qty)
        elif 0.85 <= u < 0.95:
            # Cancel a live order, chosen uniformly among the candidates
            # (dead candidates are dropped as they are drawn).
            while candidates:
                i = randrange(len(candidates))
                oid, owner = candidates[i]
                candidates[i] = candidates[-1]
                candidates.pop()
                view = order_view(owner, symbol, oid)
                if view is not None and view.status <= LIVE:
                    kind = CANCEL
                    cmd = CancelOrder(account=owner, symbol=symbol, order_id=oid)
                    break
            if cmd is None:
                counts["cancel_fallback_to_passive"] += 1
        elif u >= 0.95:
            kind = MARKET
            cmd = PlaceOrder(account=account, symbol=symbol, side=side, type=MKT, qty=qty)
        if cmd is None:  # passive
            d = randrange(1, PASSIVE_MAX + 1)
            price = mid - d if side == BUY else mid + d
            cmd = PlaceOrder(account=account, symbol=symbol, side=side, type=LIMIT, tif=GTC, price=price, qty=qty)

        accepted = _tally(counts, rejected_by, expired_by, apply(cmd, BLOCK_TIME_MS), kind)
        if accepted is not None and kind != MARKET:
            candidates.append((accepted.order_id, accepted.account))
        cmds.append(cmd)
        kinds.append(kind)

    return _finish_workload(w, engine, symbol, counts, rejected_by, expired_by, mid)


# ------------------------------------------------------------------- timing


def timed_run(config, funding, cmds, engine_class=None) -> tuple[float, float, Engine, float]:
    """Wall and CPU seconds for the loop, the engine, and the other processes'
    CPU load meanwhile."""
    engine = fresh_engine(config, funding, engine_class)
    apply = engine.apply
    t = BLOCK_TIME_MS
    gc.collect()
    probe = LoadProbe()
    c0 = time.thread_time()
    t0 = time.perf_counter()
    for cmd in cmds:
        apply(cmd, t)
    secs = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    return secs, cpu, engine, probe.others()


class LoadProbe:
    """How many CPUs other processes kept busy since it was made (from
    /proc/stat minus this process's own CPU time): a benchmark run on a
    machine where that is well above 0 was sharing it."""

    def __init__(self) -> None:
        self.busy0 = self._busy()
        self.own0 = self._own()
        self.wall0 = time.perf_counter()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = v
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def others(self) -> float:
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return 0.0
        wall = time.perf_counter() - self.wall0
        return max(0.0, ((busy - self.busy0) - (self._own() - self.own0)) / wall) if wall > 0 else 0.0


def latency_run(config, funding, cmds) -> tuple[list[int], Engine, dict]:
    """Time every command; also record the cyclic GC's pauses during the run."""
    engine = fresh_engine(config, funding)
    apply = engine.apply
    t = BLOCK_TIME_MS
    clock = time.perf_counter_ns
    lat = [0] * len(cmds)
    pauses: list[tuple[int, int]] = []  # (generation, ns)
    started = [0]

    def on_gc(phase, info, clock=clock):
        if phase == "start":
            started[0] = clock()
        else:
            pauses.append((info["generation"], clock() - started[0]))

    gc.collect()
    gc.callbacks.append(on_gc)
    try:
        for i, cmd in enumerate(cmds):
            t0 = clock()
            apply(cmd, t)
            lat[i] = clock() - t0
    finally:
        gc.callbacks.remove(on_gc)
    gc_info = {
        "collections": {str(g): sum(1 for gg, _ in pauses if gg == g) for g in range(3)},
        "pause_total_ms": sum(ns for _, ns in pauses) / 1e6,
        "pause_max_us": max((ns for _, ns in pauses), default=0) / 1000,
        "gen2_pause_max_us": max((ns for g, ns in pauses if g == 2), default=0) / 1000,
    }
    return lat, engine, gc_info


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(p * len(sorted_values) / 100 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(lat_ns: list[int]) -> dict:
    s = sorted(lat_ns)
    return {
        "p50_us": percentile(s, 50) / 1000,
        "p99_us": percentile(s, 99) / 1000,
        "p999_us": percentile(s, 99.9) / 1000,
        "max_us": s[-1] / 1000 if s else 0.0,
        "mean_us": (sum(s) / len(s) / 1000) if s else 0.0,
    }


# ------------------------------------------------------------------- memory


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


def machine() -> dict:
    import dex

    dex_dir = Path(dex.__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted([*dex_dir.glob("core/*.py"), *dex_dir.glob("engine/*.py")]):
        digest.update(f.relative_to(dex_dir).as_posix().encode() + b"\0" + f.read_bytes())
    return {
        "dex_dir": str(dex_dir),
        "dex_src_sha256": digest.hexdigest()[:16],  # dex/core + dex/engine sources measured
        **describe(),
    }


# -------------------------------------------------------------------- modes


def throughput(args, config) -> dict:
    market = config.market(args.market)
    funding = deposits(config, market, workload_accounts(args))
    t0 = time.perf_counter()
    w = workload(args, config, funding)
    gen_s = time.perf_counter() - t0
    cmds = w.cmds
    log(args, f"generated {len(cmds):,} commands in {gen_s:.1f}s; "
              f"{w.stats['trades']:,} trades, {w.stats['rejected']} rejections, "
              f"{w.resting_at_end:,} resting at the end")

    if args.profile:
        return profile(config, funding, cmds, args)

    if args.no_gc:
        gc.disable()
    secs = []
    loads: list[float] = []
    cpus: list[float] = []
    # Each implementation in turn within every round, so the machine's load
    # weighs on both alike and their ratio means something.
    impls = implementations(args.implementation)
    per_impl: dict[str, dict[str, list[float]]] = {name: {"secs": [], "cpus": []} for name in impls}
    for i in range(args.runs):
        for name, module in impls.items():
            s, cpu, engine, load = timed_run(config, funding, cmds, module.Engine)
            loads.append(load)
            h = engine.state_hash()
            if h != w.final_hash:
                raise SystemExit(f"run {i + 1} ({name}): state hash {h} differs from the generation pass's {w.final_hash}")
            del engine
            per_impl[name]["secs"].append(s)
            per_impl[name]["cpus"].append(cpu)
            if module.Engine is Engine:  # the engine dex runs: the headline figures
                secs.append(s)
                cpus.append(cpu)
            log(args, f"run {i + 1}/{args.runs} {name:>8}: {s:.3f}s ({cpu:.3f}s CPU), {len(cmds) / s:,.0f} orders/s"
                      f" (other processes: {load:.2f} CPUs)")
    if not secs:  # --implementation named only the one dex does not run
        secs, cpus = next(iter(per_impl.values()))["secs"], next(iter(per_impl.values()))["cpus"]
    by_impl = {
        name: {
            "orders_per_s": statistics.median(len(cmds) / x for x in v["secs"]),
            "orders_per_cpu_s": statistics.median(len(cmds) / x for x in v["cpus"]),
        }
        for name, v in per_impl.items()
    }
    probe = LoadProbe()
    lat, engine, gc_info = latency_run(config, funding, cmds)
    loads.append(probe.others())
    if engine.state_hash() != w.final_hash:
        raise SystemExit("latency run: state hash differs from the generation pass's")
    del engine
    if args.no_gc:
        gc.enable()

    rates = sorted(len(cmds) / s for s in secs)
    slowest = sorted(range(len(lat)), key=lat.__getitem__)[-5:][::-1]
    by_kind = {}
    for k, name in enumerate(KIND_NAMES):
        sel = [x for x, kk in zip(lat, w.kinds) if kk == k]
        if sel:
            summ = latency_summary(sel)
            by_kind[name] = {"count": len(sel), "p50_us": summ["p50_us"], "p99_us": summ["p99_us"]}
    out = {
        "mode": "throughput",
        "workload_kind": args.workload,
        "accounts": workload_accounts(args),
        "market": args.market,
        "seed": args.seed,
        "orders": len(cmds),
        "runs": args.runs,
        "gc": not args.no_gc,
        "implementation": IMPLEMENTATION,  # the engine the headline figures are for
        "implementations": by_impl,  # orders/s of each implementation timed, same workload, interleaved runs
        "compiled_vs_pure": (
            by_impl["compiled"]["orders_per_cpu_s"] / by_impl["pure"]["orders_per_cpu_s"] if len(by_impl) == 2 else None
        ),
        "orders_per_s": statistics.median(rates),
        "orders_per_s_min": rates[0],
        "orders_per_s_max": rates[-1],
        "run_seconds": secs,
        # Commands per second of this thread's CPU time: what the machine's
        # other processes disturb least (they still share caches and cores).
        "orders_per_cpu_s": statistics.median(len(cmds) / c for c in cpus),
        "run_cpu_seconds": cpus,
        **latency_summary(lat),
        "latency_by_kind": by_kind,
        "slowest": [{"index": i, "kind": KIND_NAMES[w.kinds[i]], "us": lat[i] / 1000} for i in slowest],
        "latency_run_gc": gc_info if not args.no_gc else None,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "trades": w.stats["trades"],
        "rejections": w.stats["rejected"],
        "workload": w.stats,
        "resting_at_end": w.resting_at_end,
        "mid": {"start": w.mid_start, "end": w.mid_end, "min": w.mid_min, "max": w.mid_max},
        "generate_s": gen_s,
        "state_hash": w.final_hash,
        "deterministic": True,  # every run ended in the generation pass's hash (checked above)
        "background_cpus_max": max(loads),
        "machine": machine(),
    }
    return out


def profile(config, funding, cmds, args) -> dict:
    import cProfile
    import io
    import pstats

    engine = fresh_engine(config, funding)
    apply = engine.apply
    t = BLOCK_TIME_MS
    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    for cmd in cmds:
        apply(cmd, t)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.profile_top)
    print(buf.getvalue())
    return {}


def resting(args, config) -> dict:
    market = config.market(args.market)
    symbol = args.market
    n = args.resting
    levels = args.levels
    mid = args.mid or start_mid(market)
    rng = random.Random(args.seed)
    funding = deposits(config, market, ACCOUNTS)
    engine = fresh_engine(config, funding)
    apply = engine.apply
    t = BLOCK_TIME_MS
    randrange, random_ = rng.randrange, rng.random
    chunk = 10_000
    rejected = 0
    apply_s = 0.0
    clock = time.perf_counter

    gc.collect()
    before = rss_bytes()
    probe = LoadProbe()
    t0 = time.perf_counter()
    done = 0
    while done < n:
        m = min(chunk, n - done)
        cmds = []
        for _ in range(m):
            d = randrange(1, levels + 1)
            if random_() < 0.5:
                side, price = BUY, mid - d
            else:
                side, price = SELL, mid + d
            cmds.append(PlaceOrder(account=randrange(1, ACCOUNTS + 1), symbol=symbol, side=side,
                                   type=LIMIT, tif=GTC, price=price, qty=randrange(1, QTY_MAX + 1)))
        t1 = clock()
        for cmd in cmds:
            if apply(cmd, t)[0].__class__ is OrderRejected:
                rejected += 1
        apply_s += clock() - t1
        done += m
        del cmds
    build_s = time.perf_counter() - t0
    background = probe.others()
    gc.collect()
    after = rss_bytes()
    book = engine.books[symbol]
    if rejected or book.order_count != n:
        raise SystemExit(f"resting build: {rejected} rejections, {book.order_count} resting, wanted {n}")
    n_levels = len(book.bid_prices) + len(book.ask_keys)
    log(args, f"built {n:,} resting orders on {n_levels:,} levels in {build_s:.1f}s "
              f"({apply_s:.1f}s in apply), RSS +{(after - before) / 2**20:.1f} MB")

    gc.collect()
    c0, t0 = time.thread_time(), time.perf_counter()
    data = engine.snapshot()
    snapshot_s, snapshot_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    gc.collect()
    c0, t0 = time.thread_time(), time.perf_counter()
    restored = Engine.restore(config, data)
    restore_s, restore_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    t0 = time.perf_counter()
    h_orig = engine.state_hash()
    hash_s = time.perf_counter() - t0
    h_rest = restored.state_hash()
    if h_orig != h_rest:
        raise SystemExit(f"restored state hash {h_rest} differs from the original {h_orig}")

    return {
        "mode": "resting",
        "market": symbol,
        "seed": args.seed,
        "resting_orders": n,
        "accounts": ACCOUNTS,
        "price_levels": n_levels,
        "build_s": build_s,  # generating the commands included
        "build_apply_s": apply_s,  # apply() only
        "build_places_per_s": n / apply_s,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "bytes_per_resting_order": (after - before) / n,
        "memory_method": "RSS from /proc/self/statm after gc.collect(), before and after building; "
                         "commands generated in chunks of 10,000 and discarded",
        "snapshot_s": snapshot_s,
        "snapshot_bytes": len(data),
        "snapshot_bytes_per_order": len(data) / n,
        "restore_s": restore_s,
        "snapshot_cpu_s": snapshot_cpu_s,
        "restore_cpu_s": restore_cpu_s,
        "state_hash_s": hash_s,
        "restored_hash_matches": True,
        "state_hash": h_orig,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "background_cpus_max": background,
        "machine": machine(),
    }


# --------------------------------------------------------------- block apply


def proposals(cmds: list, block_orders: int) -> list[bytes]:
    """The workload as committed proposals: `block_orders` commands a block,
    all under one signed request (as one /batchOrders makes), compressed as
    the leader hands them to Raft. Block i is stamped BLOCK_TIME_MS + i."""
    from dex.ledger.codec import Auth, assemble_proposal, compress_proposal, encode_command

    out = []
    for i in range(0, len(cmds), block_orders):
        t = BLOCK_TIME_MS + i // block_orders
        block = cmds[i : i + block_orders]
        # The signed body a /batchOrders request carries (~200 bytes of JSON
        # an order): it travels in the block, so it is what makes a block big
        # enough to be deflated (dex.ledger.codec.compress_proposal) and what
        # every node inflates.
        body = json.dumps({"batchOrders": [{k: str(v) for k, v in c._asdict().items()} for c in block]})
        auth = Auth(public_key=bytes(32), timestamp_ms=t, signature=bytes(64), payload=body.encode())
        raw = assemble_proposal(leader="n1", term=1, time_ms=t, auths=(auth,), commands=[(0, encode_command(c)) for c in block])
        out.append(compress_proposal(raw))
    return out


class block_codec:
    """The proposal decoder, events encoder and Merkle root of the
    implementation whose engine module is `module`, for the duration of a
    `with`: dex.ledger.codec and dex.ledger.state take them from the engine
    the process runs (the compiled one wherever it is built), and a node runs
    one implementation throughout, so timing the pure engine's block apply
    must use the pure ones too."""

    def __init__(self, module) -> None:
        from dex.engine import implementation_module

        wire = implementation_module(module, "wire")
        self.decode_commands, self.encode_events = wire.decode_commands, wire.encode_events
        self.merkle_root = implementation_module(module, "digest").merkle_root

    def __enter__(self):
        from dex.ledger import codec, state

        self.saved = codec._decode_commands, codec.encode_events, state.encode_events, codec.merkle_root, state.merkle_root
        codec._decode_commands = self.decode_commands
        codec.encode_events = state.encode_events = self.encode_events
        codec.merkle_root = state.merkle_root = self.merkle_root
        return self

    def __exit__(self, *exc) -> None:
        from dex.ledger import codec, state

        codec._decode_commands, codec.encode_events, state.encode_events, codec.merkle_root, state.merkle_root = self.saved


def apply_blocks(config, funding, blocks: list[bytes], engine_class) -> tuple[float, bytes, int]:
    """(CPU seconds, last block hash, commands) for what a node does per block."""
    from dex.ledger.codec import GENESIS_PARENT, decode_proposal
    from dex.ledger.replay import ReplayGuard
    from dex.ledger.state import apply_proposal

    engine = fresh_engine(config, funding, engine_class)
    guard = ReplayGuard()
    parent, parent_hash = None, GENESIS_PARENT
    n = 0
    gc.collect()
    c0 = time.thread_time()
    for data in blocks:
        proposal, leaves = decode_proposal(data)
        parent, _, _ = apply_proposal(engine, guard, parent, parent_hash, proposal, leaves)
        parent_hash = parent.hash
        n += parent.commands_count
    return time.thread_time() - c0, parent_hash, n


PHASES = ("decode", "guard", "engine", "encode", "roots", "state_hash", "header")


def timed_block(engine, guard, parent, parent_hash: bytes, data: bytes, phases: dict, version: int | None = None):
    """One block applied as dex.ledger.state.apply_proposal applies it, each
    phase's CPU time added to `phases` (seconds, by PHASES); returns (header,
    commands). `version`: the state hash's and the header's, by default the
    chain's (its first proposal's, then the parent's). bench/chain_replay.py
    times a stored chain with it."""
    from dex.ledger.codec import BlockHeader, NO_AUTH, decode_proposal, encode_events, merkle_root
    from dex.ledger.replay import rejected
    from dex.ledger.state import block_time_ms, block_version

    clock = time.thread_time
    c0 = clock()
    proposal, leaves = decode_proposal(data)
    c1 = clock()
    t = block_time_ms(parent, proposal)
    guard.advance(t)
    verdicts = [guard.admit(a.public_key, a.timestamp_ms, a.payload, t) for a in proposal.auths]
    c2 = clock()
    apply = engine.apply
    results = [
        apply(cmd, t) if index == NO_AUTH or verdicts[index] is None else [rejected(cmd, verdicts[index])]
        for cmd, index in zip(proposal.commands, proposal.auth_index)
    ]
    c3 = clock()
    encoded = [encode_events(events) for events in results]
    c4 = clock()
    commands_root, results_root = merkle_root(leaves), merkle_root(encoded)
    c5 = clock()
    version = version or block_version(parent, proposal)
    state_hash = bytes.fromhex(engine.state_hash(version))
    c6 = clock()
    header = BlockHeader(height=1 if parent is None else parent.height + 1, parent=parent_hash, leader=proposal.leader,
                         term=proposal.term, time_ms=t, commands_count=len(proposal.commands),
                         commands_root=commands_root, results_root=results_root, state_hash=state_hash, version=version)
    header.hash  # noqa: B018 (the block hash, as a node computes it: timed with the header)
    c7 = clock()
    for name, (a, b) in zip(PHASES, ((c0, c1), (c1, c2), (c2, c3), (c3, c4), (c4, c5), (c5, c6), (c6, c7))):
        phases[name] += b - a
    return header, len(proposal.commands)


def apply_blocks_phases(config, funding, blocks: list[bytes], engine_class) -> tuple[dict, bytes]:
    """apply_blocks with each phase timed on its own (CPU seconds by phase).
    It mirrors dex.ledger.state.apply_proposal; the caller checks that it
    ends in the same block hash."""
    from dex.ledger.codec import GENESIS_PARENT
    from dex.ledger.replay import ReplayGuard

    engine = fresh_engine(config, funding, engine_class)
    guard = ReplayGuard()
    parent, parent_hash = None, GENESIS_PARENT
    phases = dict.fromkeys(PHASES, 0.0)
    gc.collect()
    for data in blocks:
        parent, _ = timed_block(engine, guard, parent, parent_hash, data, phases)
        parent_hash = parent.hash
    return phases, parent_hash


def block_apply(args, config) -> dict:
    market = config.market(args.market)
    funding = deposits(config, market, workload_accounts(args))
    w = workload(args, config, funding)
    blocks = proposals(w.cmds, args.block_orders)
    log(args, f"{len(w.cmds):,} commands in {len(blocks):,} blocks of {args.block_orders}")
    impls = implementations(args.implementation)
    per_impl: dict[str, list[float]] = {name: [] for name in impls}
    probe = LoadProbe()
    head = None
    for i in range(args.runs):
        for name, module in impls.items():
            with block_codec(module):
                cpu, h, n = apply_blocks(config, funding, blocks, module.Engine)
            if head is not None and h != head:
                raise SystemExit(f"run {i + 1} ({name}): head hash {h.hex()} differs from {head.hex()}")
            head = h
            per_impl[name].append(cpu * 1e6 / n)
            log(args, f"run {i + 1}/{args.runs} {name:>8}: {cpu * 1e6 / n:.2f} us CPU per order")
    phases = {}
    for name, module in impls.items():
        with block_codec(module):
            ph, h = apply_blocks_phases(config, funding, blocks, module.Engine)
        if h != head:
            raise SystemExit(f"the phase-timed pass ({name}) ends in {h.hex()}, the timed runs in {head.hex()}")
        phases[name] = {k: v * 1e6 / len(w.cmds) for k, v in ph.items()}
    return {
        "mode": "block_apply",
        "workload_kind": args.workload,
        "accounts": workload_accounts(args),
        "market": args.market,
        "seed": args.seed,
        "orders": len(w.cmds),
        "block_orders": args.block_orders,
        "blocks": len(blocks),
        "runs": args.runs,
        "implementation": IMPLEMENTATION,
        "us_per_order": {name: statistics.median(v) for name, v in per_impl.items()},
        "us_per_order_min": {name: min(v) for name, v in per_impl.items()},
        "phases_us_per_order": phases,  # one pass each, phase by phase
        "head_hash": head.hex(),
        "background_cpus_max": probe.others(),
        "machine": machine(),
    }


# ------------------------------------------------------------------- output


def log(args, msg: str) -> None:
    if not args.json:
        print(f"  .. {msg}", file=sys.stderr, flush=True)


def print_human(r: dict) -> None:
    m = r["machine"]
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, {m['python']} ({m['platform']})")
    print(f"engine: {m['dex_dir']} (core+engine sources sha256 {m['dex_src_sha256']})")
    bg = r.get("background_cpus_max", 0.0)
    if bg > 0.25:
        print(f"WARNING: other processes kept up to {bg:.2f} CPUs busy during the measurements; "
              "figures are pessimistic and noisy")
    rows: list[tuple[str, str]] = []
    if r["mode"] == "throughput":
        wk = r["workload"]["by_kind"]
        print(f"workload: {r['orders']:,} commands on {r['market']}, seed {r['seed']}: "
              + ", ".join(f"{v:,} {k}" for k, v in wk.items())
              + f"; {r['accounts']:,} accounts; workload {r['workload_kind']}; gc {'on' if r['gc'] else 'off'}")
        for name, v in r["implementations"].items():
            rows.append((f"{name} engine orders/s", f"{v['orders_per_s']:,.0f} (median of {r['runs']}); "
                                                    f"{v['orders_per_cpu_s']:,.0f} per CPU-second"))
        if r["compiled_vs_pure"]:
            rows.append(("compiled / pure", f"{r['compiled_vs_pure']:.2f}x (per CPU-second)"))
        rows += [
            (f"orders/s (median of {r['runs']}, {r['implementation']})", f"{r['orders_per_s']:,.0f}"),
            ("orders/s min .. max", f"{r['orders_per_s_min']:,.0f} .. {r['orders_per_s_max']:,.0f}"),
            ("orders per CPU-second", f"{r['orders_per_cpu_s']:,.0f} (median)"),
            ("latency p50", f"{r['p50_us']:.1f} us"),
            ("latency p99", f"{r['p99_us']:.1f} us"),
            ("latency p99.9", f"{r['p999_us']:.1f} us"),
            ("latency max", f"{r['max_us']:.1f} us"),
        ]
        for name, v in r["latency_by_kind"].items():
            rows.append((f"  {name} p50 / p99", f"{v['p50_us']:.1f} / {v['p99_us']:.1f} us"))
        rows.append(("slowest commands", ", ".join(f"{s['kind']} {s['us']:,.0f} us" for s in r["slowest"][:3])))
        g = r["latency_run_gc"]
        if g:
            rows.append(("GC in latency run", f"{sum(g['collections'].values()):,} collections "
                                              f"(gen2: {g['collections']['2']}), {g['pause_total_ms']:.0f} ms total, "
                                              f"max pause {g['pause_max_us']:,.0f} us"))
        wl = r["workload"]
        rows += [
            ("peak RSS", f"{r['peak_rss_mb']:.1f} MB"),
            ("trades", f"{r['trades']:,}"),
            ("rejections", f"{r['rejections']:,}" + (f" {wl['rejected_by']}" if wl["rejected_by"] else "")),
            ("expired (by reason)", f"{wl['expired']:,} {wl['expired_by']}"),
            ("cancelled by user / STP", f"{wl['cancelled_user']:,} / {wl['cancelled_stp']:,}"),
            ("resting at end", f"{r['resting_at_end']:,}"),
            ("mid start/end (min..max)", f"{r['mid']['start']:,}/{r['mid']['end']:,} "
                                         f"({r['mid']['min']:,}..{r['mid']['max']:,}) ticks"),
            ("state hash (all runs)", r["state_hash"][:16] + "…"),
        ]
    elif r["mode"] == "block_apply":
        print(f"workload ({r['workload_kind']}): {r['orders']:,} commands on {r['market']}, seed {r['seed']}, in {r['blocks']:,} blocks "
              f"of {r['block_orders']} (one signed request each)")
        for name, v in r["us_per_order"].items():
            rows.append((f"{name}: block apply per order", f"{v:.2f} us CPU (median of {r['runs']}; "
                                                            f"best {r['us_per_order_min'][name]:.2f})"))
            rows.append((f"  {name} by phase", ", ".join(f"{k} {x:.2f}" for k, x in r["phases_us_per_order"][name].items())))
        rows.append(("head hash (all runs)", r["head_hash"][:16] + "…"))
    else:
        rows += [
            ("resting orders", f"{r['resting_orders']:,} on {r['price_levels']:,} levels"),
            ("bytes per resting order", f"{r['bytes_per_resting_order']:,.0f} (RSS delta)"),
            ("build", f"{r['build_s']:.2f} s, of which apply {r['build_apply_s']:.2f} s "
                      f"({r['build_places_per_s']:,.0f} places/s)"),
            ("snapshot", f"{r['snapshot_s']:.2f} s ({r['snapshot_cpu_s']:.2f} s CPU), "
                         f"{r['snapshot_bytes'] / 2**20:.1f} MB ({r['snapshot_bytes_per_order']:.0f} B/order)"),
            ("restore", f"{r['restore_s']:.2f} s ({r['restore_cpu_s']:.2f} s CPU)"),
            ("state_hash", f"{r['state_hash_s']:.2f} s; restored hash matches"),
            ("peak RSS", f"{r['peak_rss_mb']:.1f} MB"),
        ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=200_000, help="commands in the workload (default 200000)")
    p.add_argument("--workload", choices=("default", "cluster"), default="default",
                   help="the order mix (default) or bench/cluster.py --batch 100's order flow (cluster): see above")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="timed throughput runs; the median is reported")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--resting", type=int, metavar="N", help="measure memory, snapshot and restore with N resting orders")
    p.add_argument("--levels", type=int, default=5_000, help="price levels per side in --resting mode (default 5000)")
    p.add_argument("--market", default="BTCUSDT")
    p.add_argument("--implementation", choices=("both", "pure", "compiled", "default"), default="both",
                   help="engine(s) to time in throughput mode (default: both, interleaved); "
                        "latency, --resting and --profile use the one dex runs")
    p.add_argument("--config", default=str(REPO / "configs" / "markets.toml"))
    p.add_argument("--mid", type=int, help="starting mid in ticks (default: from the market's min_notional)")
    p.add_argument("--no-gc", action="store_true", help="disable the cyclic GC during the timed runs")
    p.add_argument("--profile", action="store_true", help="cProfile one replay (after generation) and print the top functions")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--block-apply", action="store_true", help="per-node block apply in us per order (see above)")
    p.add_argument("--block-orders", type=int, default=100, help="commands per block in --block-apply mode (default 100)")
    args = p.parse_args(argv)
    if args.orders < 1 or args.runs < 1 or (args.resting is not None and args.resting < 1) or not 1 <= args.block_orders <= 4096:
        p.error("--orders, --runs and --resting must be positive, --block-orders 1..4096")

    config = load_markets(args.config)
    config.market(args.market)  # KeyError for an unknown market
    t0 = time.perf_counter()
    if args.block_apply:
        result = block_apply(args, config)
    else:
        result = resting(args, config) if args.resting else throughput(args, config)
    if args.profile:
        return 0
    result["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
        print(f"  (wall time {result['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
