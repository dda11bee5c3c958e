"""Without the cluster secret, a process can neither join nor inject anything.

Raft traffic is encrypted with a key derived from the secret (PySyncObj's
`password`): a node refuses to start without a secret, drops a connection
whose first frame does not decrypt under its key (so nothing from it is ever
unpickled), and a would-be member with another password never gets a single
message through, so nothing it proposes can commit.
"""

from __future__ import annotations

import os
import pickle
import random
import shlex
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated
from pysyncobj.encryptor import getEncryptor

from cluster import local
from dex.auth import Keypair
from dex.client import Client
from dex.config import SECRET_ENV
from tests.cluster.harness import REPO, Cluster, free_ports, observe_constant

NODE_EXIT_TIMEOUT_S = 60.0
SOCKET_TIMEOUT_S = 5.0
INTRUDER_CALL_TIMEOUT_S = 2.0
INTRUDER_OBSERVE_S = 2.0


def cluster_head_and_term(cluster: Cluster) -> tuple:
    statuses = [cluster.self_status(n) for n in cluster.ids]
    assert all(s is not None for s in statuses), statuses
    return tuple((s["id"], s["term"], s["leader"], s["headHeight"], s["headHash"], s["stateHash"]) for s in statuses)


def still_works(cluster: Cluster) -> None:
    with Client(cluster.urls, Keypair.generate()) as c:
        c.deposit("USDT", "1000")
        r = c.place_order("BTCUSDT", "BUY", price="100", quantity="0.01")
    cluster.wait_converged(cluster.ids, height_min=r["blockHeight"])


# --- (a) no secret, no node -------------------------------------------------


@pytest.mark.parametrize("secret", [None, "short"], ids=["missing", "too-short"])
def test_node_without_the_secret_refuses_to_start(cluster_config: Cluster, tmp_path: Path, secret: str | None) -> None:
    text = cluster_config.cfg.path.read_text()
    assert 'secret_file = "var/cluster.secret"' in text
    copy = tmp_path / "no-secret.toml"
    copy.write_text(text.replace('secret_file = "var/cluster.secret"', 'secret_file = "var/does-not-exist.secret"'))
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    if secret is not None:
        env[SECRET_ENV] = secret
    assert not (tmp_path / "var" / "does-not-exist.secret").exists()

    result = subprocess.run(
        [sys.executable, "-m", "dex.cli", "node", "--config", str(copy), "--id", "n1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=NODE_EXIT_TIMEOUT_S,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "refusing to start" in output, output
    assert ("no cluster secret" if secret is None else "at least 16 characters") in output, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "var" / "n1").exists()  # it created no data directory either


# --- (b) raw bytes on a Raft port -------------------------------------------


class Touch:
    """Unpickling this runs `touch path`: proof of code execution if it ever appears."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def frame(payload: bytes) -> bytes:
    """A PySyncObj TCP frame (tcp_connection.TcpConnection.send): native int length, then the data."""
    return struct.pack("i", len(payload)) + payload


def unencrypted_message(obj) -> bytes:
    return frame(zlib.compress(pickle.dumps(obj, 2), 3))


def send_and_wait_for_close(address: tuple[str, int], data: bytes) -> bool:
    """Send `data`; True if the peer then closed the connection within SOCKET_TIMEOUT_S."""
    with socket.create_connection(address, timeout=SOCKET_TIMEOUT_S) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(4096):
                del chunk  # whatever it sends, it must end by closing
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return True


def test_pickles_sent_to_raft_ports_are_never_unpickled(cluster: Cluster, tmp_path: Path) -> None:
    control = tmp_path / "control"
    pickle.loads(zlib.decompress(unencrypted_message(Touch(control))[4:]))
    assert control.exists(), "the payload must work when unpickled, or its absence proves nothing"
    before = cluster_head_and_term(cluster)
    wrong_key = getEncryptor("not-the-cluster-secret-at-all")

    marks = []
    for node in cluster.cfg.nodes:
        address = (node.raft_host, node.raft_port)
        attempts = {
            "plain": unencrypted_message(Touch(tmp_path / f"pwned-{node.id}-plain")),
            # As if the random-key handshake were done: a key frame, then the payload.
            "after-key": unencrypted_message(os.urandom(32)) + unencrypted_message(Touch(tmp_path / f"pwned-{node.id}-after-key")),
            "wrong-key": frame(wrong_key.encrypt(zlib.compress(pickle.dumps(Touch(tmp_path / f"pwned-{node.id}-wrong-key"), 2), 3))),
            "garbage": frame(os.urandom(512)) + os.urandom(64),
        }
        for name, data in attempts.items():
            assert send_and_wait_for_close(address, data), f"{node.id} kept a connection open after {name!r}"
            marks.append(tmp_path / f"pwned-{node.id}-{name}")

    assert not [m for m in marks if m.exists()], "a node unpickled attacker bytes"
    assert cluster_head_and_term(cluster) == before
    still_works(cluster)


# --- (c) a member with the wrong password -----------------------------------


class Intruder(SyncObj):
    """Names the cluster's nodes as its peers, but has another password."""

    def __init__(self, self_address: str, peers: list[str]) -> None:
        conf = SyncObjConf(
            password="wrong-password-but-long-enough",
            dynamicMembershipChange=False,
            raftMinTimeout=0.4,
            raftMaxTimeout=0.8,
            connectionRetryTime=0.2,
        )
        super().__init__(self_address, peers, conf)
        self.applied: list[bytes] = []

    @replicated
    def apply_block(self, proposal_bytes: bytes):  # the same name as dex.ledger.replica's only method
        self.applied.append(proposal_bytes)
        return len(self.applied)


def test_syncobj_with_the_wrong_password_never_joins(cluster: Cluster) -> None:
    before = cluster_head_and_term(cluster)
    (port,) = free_ports(1, random.Random())
    peers = [n.raft_address for n in cluster.cfg.nodes]
    intruder = Intruder(f"127.0.0.1:{port}", peers)
    try:
        for k in range(3):
            with pytest.raises(SyncObjException):
                intruder.apply_block(f"forged block {k}".encode(), sync=True, timeout=INTRUDER_CALL_TIMEOUT_S)
        # Observation window (not a wait for a condition): the intruder keeps
        # knocking while we watch that the cluster's term, leader and head stay put.
        observe_constant(lambda: cluster_head_and_term(cluster), INTRUDER_OBSERVE_S)
        status = intruder.getStatus()
        assert status["leader"] is None, status
        assert not status["has_quorum"], status
        assert all(status[f"partner_node_status_server_{p}"] != 2 for p in peers), status
        assert intruder.applied == []
    finally:
        intruder.destroy()
    assert cluster_head_and_term(cluster) == before
    local.wait_for(lambda: cluster.leader_among(cluster.ids), 5, what="the cluster's leader, unchanged")
    still_works(cluster)
