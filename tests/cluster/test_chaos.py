"""`dex chaos`, the short profile: every fault kind that works here, once, on its own cluster.

The run is the real command (`python -m dex.cli chaos`) on a temporary
four-node cluster under signed load: kill, pause, torn and corrupt always;
partition when this process is root and nft exists (the runner skips it
loudly otherwise, and the test then expects the skip in the report). Disk
full is left out: on today's code it reveals the silent divergence of issue 10
(see docs/CHAOS.md), which another branch fixes.

The schedule tests are pure: the seed alone decides the schedule, and no
schedule ever takes down a majority. The file tests damage a real DexJournal
the way the runner does and reopen it: a torn tail costs the last record, a
flipped middle byte is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.chaos import FAULT_KINDS, JOURNAL_FILE, draw_schedule, flip_middle, record_offsets, tear_tail

REPO = Path(__file__).resolve().parents[2]
SEED = 11
RUN_TIMEOUT_S = 600
CHECKS = (
    "ledgers_readable",
    "acknowledged_once_everywhere",
    "no_duplicate_client_order_id",
    "chains_agree",
    "unknown_resolved_same_everywhere",
    "audit_passes",
    "balances_conserve",
    "caught_up",
    "faults_behaved",
    "no_applied_entries_truncated",
)


def _kinds() -> list[str]:
    kinds = ["kill", "pause", "torn", "corrupt"]
    if os.geteuid() == 0 and (shutil.which("nft") or os.path.exists("/usr/sbin/nft")):
        kinds.append("partition")
    return kinds


def test_short_profile_passes_every_check(tmp_path: Path):
    kinds = _kinds()
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "dex.cli", "chaos", "--seed", str(SEED), "--duration", "5", "--rate", "15",
               "--faults", ",".join(kinds), "--json", str(report_path)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    out = f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert report_path.exists(), out
    report = json.loads(report_path.read_text())
    assert report["seed"] == SEED
    assert [(f["kind"], f["nodes"]) for f in report["schedule"]] == [(f.kind, list(f.nodes)) for f in draw_schedule(SEED, 5, kinds, report["nodes"])]
    failed = {name: c["detail"] for name, c in report["checks"].items() if not c["ok"]}
    assert not failed, f"{failed}\n{out}"
    assert sorted(report["checks"]) == sorted(CHECKS), out
    ran = {f["kind"] for f in report["schedule"] if f["status"] == "done"}
    assert ran == set(kinds) - set(report["skippedKinds"]), out
    assert report["acknowledged"] > 0 and report["loadCounts"]["orders_acked"] == report["acknowledged"], out
    assert proc.returncode == 0, out
    assert "RESULT: every check passed" in proc.stdout


def test_the_seed_alone_decides_the_schedule():
    nodes = ["n1", "n2", "n3", "n4"]
    first = draw_schedule(7, 60, list(FAULT_KINDS), nodes)
    assert first == draw_schedule(7, 60, list(FAULT_KINDS), nodes)
    assert first != draw_schedule(8, 60, list(FAULT_KINDS), nodes)
    assert {f.kind for f in first[: len(FAULT_KINDS)]} == set(FAULT_KINDS)  # every kind once before any repeats


def test_no_schedule_takes_down_a_majority():
    for nodes in (["n1", "n2", "n3"], ["n1", "n2", "n3", "n4"], ["n1", "n2", "n3", "n4", "n5"]):
        for seed in range(200):
            for f in draw_schedule(seed, 30, ["kill", "pause", "torn"], nodes):
                assert 1 <= len(f.nodes) <= 2 and len(f.nodes) < len(nodes) // 2 + 1, (seed, f)
                assert len(set(f.nodes)) == len(f.nodes)


def _journal(path: Path, entries: int):
    from dex.ledger.journal import DexJournal

    j = DexJournal(path)
    for i in range(1, entries + 1):
        j.add(b"command-%d" % i, i, 1)
    j.sync()
    os.close(j._fd)  # a SIGKILL: nothing more is written
    return [(b"command-%d" % i, i, 1) for i in range(1, entries + 1)]


def test_a_torn_tail_loses_only_the_last_record(tmp_path: Path):
    from dex.ledger.journal import DexJournal

    path = tmp_path / JOURNAL_FILE
    written = _journal(path, 12)
    assert len(record_offsets(path)) == 12
    tear_tail(path, 0.5)
    assert len(record_offsets(path)) == 11
    j = DexJournal(path)
    assert [j[i] for i in range(len(j))] == written[:11]


def test_a_flipped_middle_byte_is_refused_by_the_journal(tmp_path: Path):
    from dex.ledger.journal import DexJournal, JournalCorrupt

    path = tmp_path / JOURNAL_FILE
    _journal(path, 12)
    assert flip_middle(path, 0.99) is not None  # even at the end of the range: never the last record
    with pytest.raises(JournalCorrupt):
        DexJournal(path)


def test_the_runner_expects_the_replicas_own_exit_codes():
    from cluster import chaos
    from dex.ledger import replica

    assert (chaos.EXIT_JOURNAL_DAMAGED, chaos.EXIT_CHAIN_DAMAGED) == (replica.EXIT_JOURNAL_DAMAGED, replica.EXIT_CHAIN_DAMAGED)
