"""bench/chain_replay.py replays a chain built in-process (chainkit) phase by
phase, checking every header against the stored one with the chain's own
state-hash version, and computes the other version from the same commands
when asked (figures, not checked for speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dex.auth import Keypair
from tests.audit.chainkit import REPO, Builder

BENCH = REPO / "bench" / "chain_replay.py"


def _run(path: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH), "--chain", str(path), "--json", *extra], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("version", [1, 2])
def test_it_replays_a_chain_of_either_version_with_either_state_hash(tmp_path: Path, version: int) -> None:
    path = tmp_path / "blocks.dat"
    b = Builder(path, chain_version=version)
    buyer, seller = Keypair.generate(), Keypair.generate()
    b.block(b.deposit(buyer, "USDT", "100000"), b.deposit(seller, "BTC", "1"))
    b.block(b.order(buyer, "BTCUSDT", "BUY", "49000.00", "0.01000"), b.order(seller, "BTCUSDT", "SELL", "49000.00", "0.00500"))
    b.close()

    own = _run(path)
    assert (own["blocks"], own["commands"], own["chain_version"], own["state_hash_version"]) == (2, 4, version, version)
    assert set(own["us_per_block"]) == {"decode", "guard", "engine", "encode", "roots", "state_hash", "header"}
    assert own["us_per_block_total"] > 0 and all(v >= 0 for v in own["us_per_block"].values())
    other = _run(path, "--state-hash-version", str(3 - version))
    assert (other["chain_version"], other["state_hash_version"]) == (version, 3 - version)


def test_a_chain_whose_headers_the_replay_does_not_reproduce_is_named(tmp_path: Path) -> None:
    """A stored header that the replay does not reproduce stops it (here the
    builder's engine was handed an extra deposit outside the chain)."""
    path = tmp_path / "blocks.dat"
    b = Builder(path)
    keys = Keypair.generate()
    b.block(b.deposit(keys, "USDT", "100"))
    from dex.core.commands import Deposit

    b.engine.apply(Deposit(account=keys.account, asset="USDT", amount=1), b.time_ms)  # the state drifts off the chain
    b.block(b.deposit(keys, "USDT", "100"))
    b.close()
    proc = subprocess.run([sys.executable, str(BENCH), "--chain", str(path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "block 2: the replayed header differs" in proc.stderr
