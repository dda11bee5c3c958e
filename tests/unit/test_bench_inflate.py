"""bench/inflate.py deflates and inflates the block benchmark's proposals with
the standard zlib and with ISA-L, each checked to read the other's (figures,
not checked for speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_inflate_benchmark_runs_and_reports_both_libraries() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "inflate.py"), "--orders", "2000", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["blocks"] >= 1 and out["raw_bytes"] > 8192  # deflated blocks only: past PROPOSAL_COMPRESS_MIN_BYTES
    for name in ("zlib", "isal"):
        r = out[name]
        assert 0 < r["deflated_bytes"] < out["raw_bytes"] // 4  # a batch's JSON deflates well past fourfold
        assert r["deflate_us"] > 0 and r["inflate_us"] > 0
