"""A node whose Raft journal is damaged in the middle refuses to start, saying
what to do; `dex node --rebuild` moves its data aside and it catches up from
the cluster to the same head."""

from __future__ import annotations

import subprocess

import pytest

from cluster import local
from dex.auth import Keypair
from dex.client import Client
from dex.ledger.journal import encode_record
from tests.cluster.harness import Cluster


def test_a_damaged_journal_is_refused_and_rebuilt_from_the_cluster(cluster: Cluster) -> None:
    with Client(cluster.urls, Keypair.generate()) as c:
        for _ in range(5):
            c.deposit("USDT", "1")
    victim = next(n for n in cluster.ids if n != cluster.wait_leader())
    cluster.wait_converged(cluster.ids)
    cluster.kill(victim)
    journal = cluster.cfg.node_data_dir(victim) / "raft.journal"
    data = bytearray(journal.read_bytes())
    data[6 + len(encode_record(b"", 1, 1)) + 8 + 16] ^= 0xFF  # inside the second record's command
    journal.write_bytes(bytes(data))

    local.start_node(cluster.cfg, victim)
    with pytest.raises(local.ClusterError, match="not running"):
        local.wait_node_ready(cluster.cfg, victim, timeout_s=20)
    log = local.log_path(cluster.cfg, victim).read_text()
    assert "refusing to start" in log and "checksum mismatch" in log and "dex node --rebuild" in log

    command = local.node_command(cluster.cfg, victim) + ["--rebuild"]
    with open(local.out_path(cluster.cfg, victim), "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    local.pid_path(cluster.cfg, victim).write_text(f"{proc.pid}\n")
    local.wait_node_ready(cluster.cfg, victim, timeout_s=30)
    with Client(cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "1")

    head = cluster.wait_converged(cluster.ids)

    assert head.height >= 6
    kept = list(journal.parent.glob("damaged-*/raft.journal"))
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(data), "the damaged journal was not kept aside"
