"""bench/store.py runs end to end on a small load and prints its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.store.pg import shared_server_or_skip

REPO = Path(__file__).resolve().parents[2]
BENCH_TIMEOUT_S = 600


def test_store_bench_smoke() -> None:
    shared_server_or_skip()
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "store.py"), "--blocks", "5", "--makers", "50", "--duration", "3", "--json", "--quiet"],
        capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["trades_per_s"] > 0 and out["write"]["postgresql"]["trades"] == 5 * 50 - 50
    assert out["write"]["sqlite"]["trades"] == out["write"]["postgresql"]["trades"]
    assert out["lag"]["blocks_in_store"] > 0 and out["lag"]["lag_p99_s"] is not None and out["lag_p99_s"] == out["lag"]["lag_p99_s"]
    assert out["lag"]["store_head"] == out["lag"]["blocks_in_store"]  # heights 1..head, each once
    assert 0 < out["lag"]["order_p50_s"] <= out["lag"]["order_p99_s"]  # the cluster's own latency, beside the lag
