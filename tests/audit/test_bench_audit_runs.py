"""bench/audit.py builds both chains and times `dex audit` over them (not how fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "audit.py"


def test_the_audit_benchmark_reports_both_variants(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--orders", "1500", "--dir", str(tmp_path), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)

    runs = {r["variant"]: r for r in out["runs"]}
    assert set(runs) == {"batch", "single"}
    assert out["orders"] == 1500 and out["seconds"] > 0 and out["orders_per_s"] > 0
    for r in runs.values():
        assert r["orders"] == 1500 and r["trades"] > 0 and r["blocks"] > 1
    assert runs["batch"]["signatures"] == 2000 + 15  # the funding deposits, then 100 orders a signature
    assert runs["single"]["signatures"] == 2000 + 1500  # one per order or cancel
    assert (tmp_path / "single" / "meta.json").exists()
