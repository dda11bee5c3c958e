"""Cut a node's Raft traffic on loopback with nftables, and heal it.

PySyncObj keeps one TCP connection per pair of nodes, opened by the node
with the greater address ("127.0.0.1:<port>" strings compared) to the
other's Raft port. So the node with the smallest address only ever accepts
connections: dropping every packet to or from its Raft port cuts it off
from every peer, and nothing else. `isolatable(cluster)` names that node.

Needs root and the `nft` command; `skip_reason()` says why not, and the
tests skip loudly with it. Each cut is its own nft table named after this
process and the port, so parallel test runs never touch each other's rules,
and `heal` (always called, by the context manager) deletes only its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.cluster.harness import Cluster

NFT_TIMEOUT_S = 10.0


def skip_reason() -> str | None:
    if shutil.which("nft") is None:
        return "no `nft` command (apt-get install nftables) to cut a node's Raft traffic"
    if os.geteuid() != 0:
        return "cutting Raft traffic with nft needs root"
    probe = f"dex_probe_{os.getpid()}"
    try:
        _nft("add", "table", "inet", probe)
        _nft("delete", "table", "inet", probe)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"nft is not permitted here: {e}"
    return None


def _nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, timeout=NFT_TIMEOUT_S)


def isolatable(cluster: Cluster) -> str:
    """The node whose Raft connections all go through its own port."""
    return min(cluster.ids, key=lambda n: cluster.cfg.node(n).raft_address)


@contextmanager
def cut_off(cluster: Cluster, node_id: str) -> Iterator[None]:
    """Drop every packet to and from node_id's Raft port while inside."""
    assert node_id == isolatable(cluster), f"{node_id} opens connections of its own; only {isolatable(cluster)} can be cut by its port"
    port = cluster.cfg.node(node_id).raft_port
    table = f"dex_cut_{os.getpid()}_{port}"
    _nft("add", "table", "inet", table)
    try:
        _nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0; policy accept; }")
        _nft("add", "rule", "inet", table, "out", "tcp", "dport", str(port), "drop")
        _nft("add", "rule", "inet", table, "out", "tcp", "sport", str(port), "drop")
        yield
    finally:
        _nft("delete", "table", "inet", table)
