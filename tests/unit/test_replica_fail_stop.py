"""A block that fails after the engine was touched stops the node, once.

Real Replica processes (PySyncObj's own apply loop, which retries a failed
entry every tick) on one node; the chain's append fails as on a full disk
(tests/unit/failing_chain_node.py). Then the node restarts on the same data
with a working chain and recovers from its journal and chain: every block
applied exactly once. Also what a restart does with a chain the journal
replay disagrees with (stops, with what to do), a torn chain tail (cut and
written again) and a chain damaged in the middle (refused, with what to do).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from dex.config import SECRET_ENV
from dex.ledger.replica import EXIT_APPLY_FAILED, EXIT_CHAIN_DAMAGED
from tests.cluster.harness import MARKETS, free_ports

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 60.0
FAIL_AT = 3
BLOCKS = 5


def _config(tmp_path: Path) -> Path:
    raft, api = free_ports(2, random.Random())
    path = tmp_path / "cluster.toml"
    path.write_text(
        "[cluster]\nname = \"failstop\"\n"
        f'markets = "{MARKETS.as_posix()}"\ndata_dir = "var"\n'
        f'[[nodes]]\nid = "n1"\nraft = "127.0.0.1:{raft}"\napi = "127.0.0.1:{api}"\n'
    )
    return path


def _run(config: Path, fail_at: int, blocks: int, time_base_ms: int = 1_000) -> subprocess.CompletedProcess:
    # The pure engine: the child wraps engine.apply to count applications, and
    # the compiled engine's methods are read-only (the replica is under test).
    env = dict(os.environ, **{SECRET_ENV: "s" * 32, "DEX_PURE_PYTHON": "1"})
    return subprocess.run(
        [sys.executable, "-m", "tests.unit.failing_chain_node", str(config), str(fail_at), str(blocks), str(time_base_ms)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )


def _applied(stdout: str) -> list[int]:
    return [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("applied ")]


def test_a_failed_chain_write_stops_the_node_once_and_a_restart_applies_every_block_once(tmp_path):
    config = _config(tmp_path)

    failed = _run(config, FAIL_AT, BLOCKS)

    assert failed.returncode == EXIT_APPLY_FAILED, f"exit {failed.returncode}\n{failed.stdout}\n{failed.stderr[-3000:]}"
    assert _applied(failed.stdout) == list(range(1, FAIL_AT + 1)), "a block was applied to the engine more than once"
    critical = [line for line in failed.stderr.splitlines() if line.startswith("CRITICAL")]
    assert len(critical) == 1, critical
    assert f"block {FAIL_AT}" in critical[0] and "short write" in critical[0] and "Free space" in critical[0]
    assert "head " not in failed.stdout

    recovered = _run(config, 0, 1)  # the disk has room again

    assert recovered.returncode == 0, recovered.stderr[-3000:]
    # Blocks 1..FAIL_AT-1 were stored: the restart replays them onto the
    # chain without the engine applying them twice; it re-applies the failed
    # block and what came after it from the journal, then one more.
    height, usdt = _head(recovered)
    assert height == usdt, f"head {height} holds {usdt} one-unit deposits: a block was applied twice or lost"
    assert height >= FAIL_AT + 1


def _head(result: subprocess.CompletedProcess) -> tuple[int, int]:
    """(height, USDT of the depositor) the child printed."""
    head = [line.split() for line in result.stdout.splitlines() if line.startswith("head ")]
    assert head, f"{result.stdout}\n{result.stderr[-3000:]}"
    return int(head[0][1]), int(head[0][2])


def test_a_chain_the_journal_replay_disagrees_with_stops_the_node_with_what_to_do(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    assert _run(_config(ours), 0, BLOCKS).returncode == 0
    assert _run(_config(theirs), 0, BLOCKS, time_base_ms=2_000).returncode == 0  # other block times: other hashes
    chain = next(ours.rglob("blocks.dat"))
    chain.write_bytes(next(theirs.rglob("blocks.dat")).read_bytes())

    refused = _run(next(ours.glob("cluster.toml")), 0, 1)

    assert refused.returncode == EXIT_APPLY_FAILED, refused.stderr[-3000:]
    critical = [line for line in refused.stderr.splitlines() if line.startswith("CRITICAL")]
    assert len(critical) == 1 and "block 1 " in critical[0] and "ChainError" in critical[0], critical
    assert "dex node --rebuild" in critical[0]
    assert _applied(refused.stdout) == [1], "the engine applied the disagreeing block more than once"


def test_a_torn_chain_tail_is_cut_and_written_again_from_the_journal(tmp_path):
    config = _config(tmp_path)
    assert _head(_run(config, 0, BLOCKS)) == (BLOCKS, BLOCKS)
    chain = next(tmp_path.rglob("blocks.dat"))
    data = chain.read_bytes()
    chain.write_bytes(data[: len(data) - 7])  # a crash in the middle of the last record

    height, usdt = _head(_run(config, 0, 1))

    assert (height, usdt) == (BLOCKS + 1, BLOCKS + 1)


def test_a_chain_damaged_in_the_middle_is_refused_with_what_to_do(tmp_path):
    config = _config(tmp_path)
    assert _run(config, 0, BLOCKS).returncode == 0
    chain = next(tmp_path.rglob("blocks.dat"))
    data = bytearray(chain.read_bytes())
    data[40] ^= 0xFF  # inside the first record, with records after it
    chain.write_bytes(bytes(data))

    refused = _run(config, 0, 1)

    assert refused.returncode == EXIT_CHAIN_DAMAGED, refused.stderr[-3000:]
    critical = [line for line in refused.stderr.splitlines() if line.startswith("CRITICAL")]
    assert len(critical) == 1 and "dex node --rebuild" in critical[0], critical
    assert "Traceback" not in refused.stderr
