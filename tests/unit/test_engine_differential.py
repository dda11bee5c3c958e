"""The compiled engine against the pure one on the benchmark's workloads.

bench/engine.py's seeded generator makes the workloads (passive and
aggressive limits, cancels, market orders from 1,000 accounts around a
walking mid). Each slice is replayed through both implementations side by
side in blocks of BLOCK_COMMANDS commands; after every block the two must
have returned the same events (equal, and equal in repr, so an IntEnum that
became a plain int shows) and reach the same state hash, and every
SNAPSHOT_EVERY_BLOCKS blocks and at the end their snapshots must be the same
bytes. Over all slices: COMMANDS_TOTAL commands.

A failure names the slice (market and seed) and the block; rerun the slice
with `pytest tests/unit/test_engine_differential.py -k <market>-<seed>`.
Skipped, saying so, where the compiled engine is not built. Hypothesis-drawn
streams go through both as well: tests/property runs the model test on each.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from dex.core.markets import load_markets
from tests import engines, kit

BLOCK_COMMANDS = 100
SNAPSHOT_EVERY_BLOCKS = 50
SLICE_COMMANDS = 100_000
SLICES = [(market, seed) for seed in (1, 2, 3, 4) for market in ("BTCUSDT", "ETHUSDT", "ETHBTC")][:10]
COMMANDS_TOTAL = SLICE_COMMANDS * len(SLICES)
assert COMMANDS_TOTAL >= 1_000_000


def _bench():
    """bench/engine.py as a module (it is a script beside bench/machine.py)."""
    bench_dir = str(kit.ROOT / "bench")
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    spec = importlib.util.spec_from_file_location("bench_engine", kit.ROOT / "bench" / "engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def both():
    modules = engines.available()
    if len(modules) < 2:
        engines.module("compiled")  # skips, saying why
    return modules


@pytest.mark.parametrize(("market", "seed"), SLICES, ids=[f"{m}-{s}" for m, s in SLICES])
def test_compiled_and_pure_agree_block_by_block(both, market, seed):
    bench = _bench()
    config = load_markets(kit.MARKETS_TOML)
    funding = bench.deposits(config, config.market(market), bench.ACCOUNTS)
    workload = bench.generate(config, market, SLICE_COMMANDS, seed, funding)
    pure_module, compiled_module = both
    pure, compiled = pure_module.Engine(config), compiled_module.Engine(config)
    time_ms = bench.BLOCK_TIME_MS
    for cmd in funding:
        assert pure.apply(cmd, time_ms) == compiled.apply(cmd, time_ms)
    where = f"{market} seed {seed}"

    cmds = workload.cmds
    for block, start in enumerate(range(0, len(cmds), BLOCK_COMMANDS)):
        time_ms += 1
        chunk = cmds[start : start + BLOCK_COMMANDS]
        events_pure = [pure.apply(cmd, time_ms) for cmd in chunk]
        events_compiled = [compiled.apply(cmd, time_ms) for cmd in chunk]

        assert events_pure == events_compiled, f"{where}, block {block}: events differ"
        assert repr(events_pure) == repr(events_compiled), f"{where}, block {block}: event field types differ"
        assert pure.state_hash() == compiled.state_hash(), f"{where}, block {block}: state hashes differ"
        if block % SNAPSHOT_EVERY_BLOCKS == 0:
            assert pure.snapshot() == compiled.snapshot(), f"{where}, block {block}: snapshots differ"

    assert pure.snapshot() == compiled.snapshot(), f"{where}: final snapshots differ"
    compiled.check_invariants()
    pure.check_invariants()
    assert any(e.__class__.__name__ == "Trade" for e in events_pure[-1] + events_pure[-2]) or workload.stats["trades"] > 0
