"""The cluster benchmark runs end to end and reports what it should (not how fast).

A small run: a 3 s saturating phase and one leader kill on its own 4-node
cluster (free ports, temp dir), then the ledger check on every node.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "cluster.py"
KEYS = (
    "orders_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "failover_median_s",
    "failover_max_s",
    "lost_orders",
    "duplicate_orders",
)


def test_cluster_bench_runs_and_loses_nothing():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "3", "--kills", "1", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    r = json.loads(proc.stdout)
    for key in KEYS:
        assert key in r, key
    assert r.get("error") is None, r["error"]
    assert r["orders_per_s"] > 0
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert 0 < r["failover_median_s"] <= r["failover_max_s"]
    assert len(r["kills"]["kills"]) == 1
    assert r["catchup_s"] is None  # not measured in this run
    assert r["lost_orders"] == 0
    assert r["duplicate_orders"] == 0
    assert r["verify"]["hashes_agree"] is True
    assert r["verify"]["acked_orders"] > 0


def test_cluster_bench_batch_mode_runs_and_loses_nothing():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "2", "--batch", "20", "--concurrency", "4", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stderr\n{proc.stderr[-5000:]}"
    r = json.loads(proc.stdout)
    assert r["orders_per_s"] > 0
    assert r["lost_orders"] == 0 and r["duplicate_orders"] == 0
    assert r["verify"]["hashes_agree"] is True
    assert r["verify"]["acked_orders"] >= 20  # at least one whole batch
