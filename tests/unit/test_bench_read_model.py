"""bench/read_model.py feeds a node's History and stream hub the block
benchmark's events and reports their CPU an order (figures, not checked for
speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_read_model_benchmark_runs_and_reports_per_order_cost() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "read_model.py"), "--orders", "3000", "--runs", "2", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["orders"] == 3000 and out["blocks"] == 30
    assert out["events_per_order"] > 1  # every order is accepted, some trade or are cancelled
    assert len(out["history_us_per_order_runs"]) == 2 and out["history_us_per_order"] > 0
    assert len(out["hub_us_per_order_runs"]) == 2 and out["hub_us_per_order"] > 0
    # Idle, the hub returns from every block at once: far below following one.
    assert len(out["hub_idle_us_per_order_runs"]) == 2 and 0 <= out["hub_idle_us_per_order"] < out["hub_us_per_order"]
