"""A power loss of every node at once loses no acknowledged order, and no
node votes twice in a term (durability = "fsync", dex/ledger/journal.py).

The power loss is simulated in the ledger's own file layer: with
DEX_RECORD_SYNCED_LENGTHS set, each fsync of the journal and the chain notes
the file's durable length beside it (dex/ledger/durable.py). The test
SIGKILLs every node at once, cuts each journal and chain back to its durable
length (all a power loss keeps of a file; the term file is replaced
atomically and fsynced, so it is kept whole), and restarts them. The same run
with durability = "os" must lose acknowledged orders: that is the proof the
simulation can see a loss."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from cluster import local
from dex.auth import Keypair
from dex.client import Client
from dex.config import SECRET_ENV
from dex.ledger.durable import SYNCED_SIDECAR_ENV, sidecar
from tests.cluster.conftest import CLUSTERS
from tests.cluster.harness import Cluster

ACCOUNTS = 4
ORDERS_PER_ACCOUNT = 15
VOTE = re.compile(r"term (\d+): voted for (\S+)")


def lose_power(cluster: Cluster) -> None:
    """SIGKILL every node at once, then keep of each ledger file only what
    was fsynced."""
    pids = [local.node_pid(cluster.cfg, n) for n in cluster.ids]
    for pid in pids:
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(local.node_pid(cluster.cfg, n) is not None for n in cluster.ids):
        assert time.monotonic() < deadline, "a node survived SIGKILL"
        time.sleep(0.05)
    for n in cluster.ids:
        data = cluster.cfg.node_data_dir(n)
        for name in ("raft.journal", "blocks.dat"):
            path = data / name
            synced = int(sidecar(path).read_text()) if sidecar(path).exists() else 0
            if path.exists() and path.stat().st_size > synced:
                with open(path, "r+b") as f:
                    f.truncate(synced)


def run_load(cluster: Cluster) -> list[tuple[Keypair, list[int]]]:
    """Acknowledged orders: (account keys, order ids) per account."""
    acked = []
    for i in range(ACCOUNTS):
        keys = Keypair.generate()
        with Client(cluster.url(cluster.ids[i % len(cluster.ids)]), keys) as c:
            c.deposit("USDT", "100000")
            ids = [c.place_order("BTCUSDT", "BUY", "LIMIT", price=f"{30000 + j}.00", quantity="0.00100")["orderId"] for j in range(ORDERS_PER_ACCOUNT)]
        acked.append((keys, ids))
    return acked


def lost_orders(cluster: Cluster, acked: list[tuple[Keypair, list[int]]]) -> int:
    lost = 0
    for keys, ids in acked:
        with Client(cluster.urls, keys) as c:
            present = {o["orderId"] for o in c.open_orders("BTCUSDT")}
        lost += len(set(ids) - present)
    return lost


def votes_by_term(cluster: Cluster) -> dict[str, dict[int, set[str]]]:
    out: dict[str, dict[int, set[str]]] = {}
    for n in cluster.ids:
        text = "".join(p.read_text(errors="replace") for p in sorted(cluster.cfg.node_data_dir(n).glob("node.log*")))
        terms: dict[int, set[str]] = {}
        for term, candidate in VOTE.findall(text):
            terms.setdefault(int(term), set()).add(candidate)
        out[n] = terms
    return out


def power_loss_run(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, durability: str) -> tuple[int, Cluster]:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.setenv(SYNCED_SIDECAR_ENV, "1")
    cluster = Cluster.create(tmp_path / durability, name=f"power-{durability}", settings={"durability": durability, "store": 0})
    request.node.stash.setdefault(CLUSTERS, []).append(cluster)
    cluster.up()
    acked = run_load(cluster)
    lose_power(cluster)
    for n in cluster.ids:
        local.start_node(cluster.cfg, n)
    for n in cluster.ids:
        local.wait_node_ready(cluster.cfg, n, timeout_s=30)
    cluster.wait_leader()
    cluster.wait_converged(cluster.ids)
    return lost_orders(cluster, acked), cluster


def test_a_power_loss_of_every_node_loses_no_acknowledged_order(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    lost, cluster = power_loss_run(tmp_path, request, monkeypatch, "fsync")
    try:
        assert lost == 0
        for node, terms in votes_by_term(cluster).items():
            twice = {t: c for t, c in terms.items() if len(c) > 1}
            assert not twice, f"{node} voted for two candidates in a term: {twice}"
        assert any(votes_by_term(cluster).values()), "no vote was logged: the check saw nothing"
    finally:
        cluster.close()
    cluster.check_log()


def test_the_simulation_sees_the_loss_when_nothing_is_fsynced(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    lost, cluster = power_loss_run(tmp_path, request, monkeypatch, "os")
    try:
        assert lost == ACCOUNTS * ORDERS_PER_ACCOUNT
    finally:
        cluster.close()
    cluster.check_log()
