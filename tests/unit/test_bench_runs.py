"""The engine benchmark runs and reports what it should (not how fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "engine.py"


def run_bench(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_throughput_mode_reports_positive_figures():
    r = run_bench("--orders", "2000", "--runs", "1")
    for key in ("orders_per_s", "p50_us", "p99_us", "peak_rss_mb"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, key
    assert r["p50_us"] <= r["p99_us"] <= r["max_us"]
    assert r["orders"] == 2000
    assert r["trades"] > 0
    assert r["rejections"] == 0
    kinds = r["workload"]["by_kind"]
    assert sum(kinds.values()) == 2000 and all(kinds[k] > 0 for k in ("passive", "aggressive", "cancel", "market"))
    assert len(r["state_hash"]) == 64


def test_throughput_is_deterministic_across_runs():
    a = run_bench("--orders", "1000", "--runs", "2", "--seed", "7")
    b = run_bench("--orders", "1000", "--runs", "1", "--seed", "7")
    assert a["state_hash"] == b["state_hash"]
    assert a["trades"] == b["trades"]


def test_the_cluster_workload_places_batches_with_client_ids_and_mass_cancels():
    r = run_bench("--workload", "cluster", "--orders", "25000", "--runs", "1", "--seed", "3")
    assert r["workload_kind"] == "cluster" and r["accounts"] == 100
    kinds = r["workload"]["by_kind"]
    assert kinds["passive"] > 0 and kinds["aggressive"] > 0 and kinds["market"] == 0
    assert kinds["passive"] % 100 == 0 and kinds["aggressive"] % 100 == 0  # whole batches
    assert kinds["cancel"] > 0  # a CancelAll whenever more than 10,000 rest
    assert r["workload"]["cancelled_user"] > 50 * kinds["cancel"]  # each ends an account's resting orders
    assert r["workload"]["expired_by"].get("IOC", 0) > 0 and r["trades"] > 0
    assert r["rejections"] == 0
    assert r["resting_at_end"] <= 10_000 + 100
    again = run_bench("--workload", "cluster", "--orders", "25000", "--runs", "1", "--seed", "3", "--implementation", "pure")
    assert again["state_hash"] == r["state_hash"]


def test_resting_mode_reports_memory_snapshot_and_restore():
    r = run_bench("--resting", "20000")
    assert r["resting_orders"] == 20000
    for key in ("bytes_per_resting_order", "snapshot_s", "restore_s", "snapshot_bytes", "peak_rss_mb"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, key
    assert r["restored_hash_matches"] is True


def test_block_apply_mode_reports_each_phase_and_one_head_hash():
    # Each implementation built here replays the same blocks; the bench itself
    # exits non-zero when their head hashes (or the phase-timed pass's) differ.
    r = run_bench("--block-apply", "--orders", "1000", "--block-orders", "100", "--runs", "1")
    assert r["blocks"] == 10 and r["orders"] == 1000
    for name, us in r["us_per_order"].items():
        assert us > 0, name
        phases = r["phases_us_per_order"][name]
        assert set(phases) == {"decode", "guard", "engine", "encode", "roots", "state_hash", "header"}
        assert all(v >= 0 for v in phases.values()) and phases["engine"] > 0
    assert len(r["head_hash"]) == 64


def test_signing_bench_reports_both_libraries():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "signing.py"), "--rounds", "2", "--calls", "50", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("verify_openssl_us", "verify_dex_us", "sign_openssl_us", "sign_dex_us"):
        assert len(r[key]) == 2 and all(v > 0 for v in r[key]), key
    assert r["verify_ratio"] > 0 and r["sign_ratio"] > 0


def test_block_apply_times_each_implementation_with_its_own_codec():
    # A node runs one implementation throughout: the pure engine's block apply
    # must be timed with the pure decoder, events encoder and Merkle root, not
    # the ones dex.ledger.codec takes from the engine this process runs.
    import importlib.util

    import dex.engine
    from dex.engine import digest, wire
    from dex.engine import engine as pure_engine
    from dex.ledger import codec, state

    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
    before = (codec._decode_commands, codec.encode_events, state.encode_events, codec.merkle_root, state.merkle_root)
    with bench.block_codec(pure_engine):
        assert (codec._decode_commands, codec.encode_events, state.encode_events, codec.merkle_root, state.merkle_root) == (
            wire.decode_commands, wire.encode_events, wire.encode_events, digest.merkle_root, digest.merkle_root)
    assert (codec._decode_commands, codec.encode_events, state.encode_events, codec.merkle_root, state.merkle_root) == before
    assert before[0] is dex.engine.decode_commands
