"""bench/ingress.py times the leader's parse, translation and answer of batch
orders (figures, not checked for speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "ingress.py"), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("resp_type", ["ACK", "FULL"])
def test_the_ingress_benchmark_runs_and_reports_per_order_cost(resp_type: str) -> None:
    proc = _run("--batches", "20", "--batch", "50", "--runs", "2", "--resp-type", resp_type, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["orders"] == 1000 and out["resp_type"] == resp_type
    assert out["answered"] == 1000  # every order accepted and answered from its events
    assert out["trades_per_order"] > 0  # some orders cross: answers are rendered from fills
    assert all(out[f"{step}_us_per_order"] > 0 for step in ("parse", "commands", "render"))
    assert len(out["runs_us_per_order"]) == 2


def test_bad_arguments_are_refused() -> None:
    assert _run("--batch", "101").returncode == 2
    assert _run("--runs", "0").returncode == 2
