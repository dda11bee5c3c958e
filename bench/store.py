"""Benchmark of the trade store: trades written per second into PostgreSQL,
and the writer's lag under the cluster benchmark's load.

write   A chain of --blocks blocks is built with the engine (no Raft;
        dex.store.synthetic): each block places --makers small sells and one
        IOC buy that takes the sells of the block before, so every trade
        inserts a trade row and an order row and updates an earlier order.
        One StoreWriter (the production code) writes it all into a fresh
        database, in its bounded batches; trades_per_s = trades / wall time
        of StoreWriter.step() (schema migration excluded). The same chain is
        also written into SQLite, for comparison.
lag     bench/cluster.py runs (saturating, --duration s) with DATABASE_URL
        set to a second fresh database, so its four nodes write there. Every
        block row carries written_ms (the writer's clock just before the
        commit); lag = written_ms - time_ms (the block's time, the leader's
        clock: one machine, one clock). lag_p99_s is the 99th percentile over
        every block written. The cluster bench tears its cluster down after
        its own ledger check, by when the writer has normally caught up;
        blocks_in_store vs the cluster's head is printed. A block reaches a
        chain only once it is committed, so the lag contains its commit
        time under that load. For context, order_p50_s / order_p99_s are
        the cluster bench's request latencies (which also hold the wait
        for a block before it is sealed, not in the lag).

Fresh databases are created on --server (default the local 127.0.0.1:5432,
trust auth) and dropped at the end.

    python bench/store.py                 # both, human-readable
    python bench/store.py --json          # one JSON object: trades_per_s, lag_p99_s, ...
    python bench/store.py --blocks 50 --makers 200 --duration 5 --json    # the smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.append(str(HERE))

import psycopg2  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from machine import describe  # noqa: E402 (bench/machine.py)
from dex.core.markets import load_markets  # noqa: E402
from dex.store import db  # noqa: E402
from dex.store.models import Block  # noqa: E402
from dex.store.synthetic import ChainBuilder, trading_blocks  # noqa: E402
from dex.store.writer import StoreWriter  # noqa: E402

MARKETS = REPO / "configs" / "markets.toml"
TARGET_TRADES_PER_S = 50_000
TARGET_LAG_P99_S = 1.0
CLUSTER_TIMEOUT_S = 1800


def log(args, msg: str) -> None:
    if not args.quiet:
        print(f"  .. {msg}", file=sys.stderr, flush=True)


class Server:
    def __init__(self, server: str) -> None:
        host, _, port = server.rpartition(":")
        self.host, self.port = host, int(port)
        self.created: list[str] = []

    def _admin(self):
        conn = psycopg2.connect(host=self.host, port=self.port, user="postgres", dbname="postgres", connect_timeout=3)
        conn.autocommit = True
        return conn

    def fresh(self) -> str:
        name = f"dex_bench_{secrets.token_hex(5)}"
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        self.created.append(name)
        return f"postgresql+psycopg2://postgres@{self.host}:{self.port}/{name}"

    def drop_all(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                for name in self.created:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()


def run_write(args, url: str, workdir: Path) -> dict:
    markets = load_markets(MARKETS)
    builder = ChainBuilder(workdir / "chain" / "blocks.dat", markets)
    t0 = time.perf_counter()
    trades = trading_blocks(builder, args.blocks, args.makers)
    log(args, f"chain: {builder.chain.height} blocks, {trades:,} trades, built in {time.perf_counter() - t0:.1f} s")
    out = {}
    for name, target in (("postgresql", url), ("sqlite", f"sqlite:///{workdir / 'store' / 'trades.sqlite'}")):
        if name == "sqlite" and args.no_sqlite:
            continue
        engine = db.make_engine(target)
        db.migrate(engine)
        engine.dispose()
        writer = StoreWriter(target, builder.chain, markets, node_id="bench")
        load0 = os.getloadavg()[0]
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        blocks = writer.step()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        writer.stop()
        assert blocks == builder.chain.height and writer.trades_written == trades, (blocks, writer.trades_written, trades)
        out[name] = {
            "trades": trades, "blocks": blocks, "seconds": round(elapsed, 2), "trades_per_s": round(trades / elapsed),
            "writer_cpu_s": round(cpu, 2), "trades_per_writer_cpu_s": round(trades / cpu) if cpu else None,
            "loadavg_at_start": round(load0, 2),
        }
        log(args, f"{name}: {trades:,} trades in {elapsed:.2f} s = {trades / elapsed:,.0f} trades/s "
                  f"(writer CPU {cpu:.2f} s: {out[name]['trades_per_writer_cpu_s']:,} trades per CPU-second)")
    builder.close()
    return out


def _seconds(ms) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def run_lag(args, url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": url}
    argv = [sys.executable, str(HERE / "cluster.py"), "--duration", str(args.duration), "--json", "--quiet", *args.cluster_args]
    log(args, f"cluster load: {' '.join(argv[1:])} (DATABASE_URL set)")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CLUSTER_TIMEOUT_S)
    try:
        cluster = json.loads(r.stdout)
    except ValueError:
        raise SystemExit(f"bench/cluster.py failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}") from None
    engine = db.make_engine(url)
    with engine.connect() as conn:
        lags = sorted(conn.execute(select(Block.written_ms - Block.time_ms)).scalars())
        head = conn.execute(select(func.max(Block.height))).scalar()
        trades = conn.execute(text("SELECT count(*) FROM trades")).scalar_one()
    engine.dispose()
    saturate = cluster.get("saturate") or {}
    heads = [v["height"] for v in ((cluster.get("verify") or {}).get("head") or {}).values()]
    heights = max(heads) if heads else None

    def pct(p: float):
        return round(lags[min(len(lags) - 1, int(len(lags) * p))] / 1000, 3) if lags else None

    out = {
        "orders_per_s": saturate.get("orders_per_s"),
        "blocks_in_store": len(lags),
        "store_head": head,
        "cluster_head": heights,
        "trades_in_store": trades,
        "lag_p50_s": pct(0.50),
        "lag_p99_s": pct(0.99),
        "lag_max_s": round(lags[-1] / 1000, 3) if lags else None,
        # For context: the cluster's request latency under the same load (sent .. answered).
        "order_p50_s": _seconds(saturate.get("p50_ms")),
        "order_p99_s": _seconds(saturate.get("p99_ms")),
        "cluster_exit": r.returncode,
    }
    log(args, f"lag over {len(lags):,} blocks: p50 {out['lag_p50_s']} s, p99 {out['lag_p99_s']} s, max {out['lag_max_s']} s "
              f"(the cluster's order latency itself: p50 {out['order_p50_s']} s, p99 {out['order_p99_s']} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:5432", help="PostgreSQL host:port (trust auth, user postgres)")
    p.add_argument("--blocks", type=int, default=200, help="write: blocks in the synthetic chain")
    p.add_argument("--makers", type=int, default=1000, help="write: makers per block (= trades per block)")
    p.add_argument("--duration", type=float, default=20.0, help="lag: seconds of saturating cluster load")
    p.add_argument("--no-lag", action="store_true", help="skip the cluster run")
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite comparison")
    p.add_argument("--cluster-args", nargs=argparse.REMAINDER, default=[], help="more arguments for bench/cluster.py")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    server = Server(args.server)
    workdir = Path(tempfile.mkdtemp(prefix="dex-bench-store-"))
    result = {"machine": {**describe(), "loadavg_at_start": round(os.getloadavg()[0], 2)}, "config": vars(args).copy()}
    try:
        result["write"] = run_write(args, server.fresh(), workdir)
        if not args.no_lag:
            result["lag"] = run_lag(args, server.fresh())
    finally:
        server.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    result["trades_per_s"] = result["write"]["postgresql"]["trades_per_s"]
    result["lag_p99_s"] = result.get("lag", {}).get("lag_p99_s")
    result["targets"] = {
        "trades_per_s": {"value": result["trades_per_s"], "target": f">= {TARGET_TRADES_PER_S}", "met": result["trades_per_s"] >= TARGET_TRADES_PER_S},
        "lag_p99_s": {"value": result["lag_p99_s"], "target": f"<= {TARGET_LAG_P99_S}", "met": result["lag_p99_s"] is not None and result["lag_p99_s"] <= TARGET_LAG_P99_S},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m = result["machine"]
        print(f"machine: {m['cpu']}, nproc {m['nproc']}, load average at start {m['loadavg_at_start']}")
        for name, w in result["write"].items():
            print(f"write {name:10s}: {w['trades']:,} trades, {w['blocks']} blocks in {w['seconds']} s = {w['trades_per_s']:,} trades/s "
                  f"(writer CPU {w['writer_cpu_s']} s; load average {w['loadavg_at_start']})")
        if "lag" in result:
            g = result["lag"]
            print(f"lag under cluster load ({g['orders_per_s']} orders/s): p50 {g['lag_p50_s']} s, p99 {g['lag_p99_s']} s, max {g['lag_max_s']} s "
                  f"over {g['blocks_in_store']} blocks ({g['trades_in_store']} trades); "
                  f"the cluster's order latency under it: p50 {g['order_p50_s']} s, p99 {g['order_p99_s']} s")
        for name, t in result["targets"].items():
            print(f"target {name}: {t['value']} ({t['target']}) {'met' if t['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
