"""`dex audit` on a real cluster's chains: orders placed through the API on
four real nodes, the nodes stopped, then `dex audit` as a subprocess on a
node's data. A sound chain passes; `--at H` shows the book and balances the
API showed at height H; an attacker's edits to copies of the chain file (each
record rewritten with a valid crc) fail, naming the block."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from cluster import local
from dex.auth import Keypair
from dex.client import Client
from dex.core.commands import PlaceOrder
from dex.ledger.chain import Chain
from dex.ledger.codec import decode_proposal, encode_command
from tests.audit import tamper
from tests.cluster.harness import REPO, Cluster

AUDIT_TIMEOUT_S = 180.0


def dex_audit(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "dex.cli", "audit", "--config", str(cluster.cfg.path), *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=AUDIT_TIMEOUT_S,
    )


def audit_json(cluster: Cluster, *args: str) -> tuple[int, dict]:
    proc = dex_audit(cluster, *args, "--json")
    assert proc.stdout, f"exit {proc.returncode}, no output; stderr: {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(proc.stdout)


def first_signed_order(path: Path) -> tuple[int, int, PlaceOrder, bytes, bytes]:
    """(height, command index, the order, its leaf, its signature) of the first signed order."""
    with Chain(path, read_only=True) as chain:
        for block in chain.blocks(1, chain.height + 1):
            proposal, leaves = decode_proposal(block.proposal)
            for i, cmd in enumerate(proposal.commands):
                if isinstance(cmd, PlaceOrder):
                    auth = proposal.auths[proposal.auth_index[i]]
                    return block.header.height, i, cmd, leaves[i], auth.signature
    raise AssertionError("no signed order in the chain")


def test_audit_of_a_real_cluster_passes_shows_past_state_and_names_tampered_blocks(cluster: Cluster, tmp_path: Path) -> None:
    alice, bob = Keypair.generate(), Keypair.generate()
    with Client(cluster.urls, alice) as a, Client(cluster.urls, bob) as b:
        a.deposit("USDT", "100000")
        b.deposit("BTC", "2")
        a.place_order("BTCUSDT", "BUY", price="50000.00", quantity="0.01000")
        a.place_order("BTCUSDT", "BUY", price="49900.00", quantity="0.02000")
        b.place_order("BTCUSDT", "SELL", price="49900.00", quantity="0.01500")  # two trades
        b.batch_orders([{"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "price": f"{51000 + i}.00", "quantity": "0.001"} for i in range(5)])
        open_bob = b.open_orders("BTCUSDT")
        b.cancel_order("BTCUSDT", order_id=open_bob[0]["orderId"])
        # The state at this height, as the API shows it; nothing is placed after.
        depth = a.depth("BTCUSDT", limit=20)
        height = depth["lastUpdateId"]
        balances = {str(alice.account): a.account()["balances"], str(bob.account): b.account()["balances"]}
        assert a.depth("BTCUSDT", limit=20)["lastUpdateId"] == height, "a block landed while reading the state"
    head = cluster.wait_converged(cluster.ids, height_min=height)
    assert head.height == height

    # A running node's chain can be audited (read-only: the node keeps writing).
    rc, live = audit_json(cluster, "--node", "n2", "--no-store")
    assert rc == 0 and live["ok"], live["problems"]

    local.down(cluster.cfg)
    assert cluster.alive() == []

    rc, report = audit_json(cluster, "--node", "n1", "--no-store")
    assert rc == 0 and report["ok"], report["problems"]
    assert report["blocks"] == height and report["headHeight"] == height
    assert report["orders"] == 3 + 5 and report["trades"] == 2
    assert report["signatures"] == report["commands"] - report["unsignedCommands"] - 4  # the batch's 5 orders share one
    store_file = cluster.cfg.data_dir / "trades.sqlite"  # the cluster's default store
    if importlib.util.find_spec("dex.store.check") is not None and getattr(cluster.cfg, "store", False):
        assert store_file.exists(), "the nodes run a store but wrote no SQLite file"
        rc, full = audit_json(cluster, "--node", "n1")
        assert rc == 0 and full["ok"] and full["store"] == "checked", full["problems"]
        with sqlite3.connect(store_file) as db:
            trade_id, trade_height = db.execute("SELECT trade_id, height FROM trades ORDER BY trade_id LIMIT 1").fetchone()
            db.execute("DELETE FROM trades WHERE trade_id = ?", (trade_id,))
        rc, full = audit_json(cluster, "--node", "n1")
        assert rc == 1 and f"trades: block {trade_height}: trade {trade_id} missing (deleted)" in full["problems"], full["problems"]

    rc, at = audit_json(cluster, "--node", "n3", "--no-store", "--at", str(height), "--depth", "20")
    assert rc == 0, at["problems"]
    assert at["state"]["books"]["BTCUSDT"] == {"bids": depth["bids"], "asks": depth["asks"]}
    shown = {acct["accountId"]: acct["balances"] for acct in at["state"]["accounts"]}
    for account, api_balances in balances.items():
        assert shown[account] == api_balances, account
    text = dex_audit(cluster, "--node", "n3", "--no-store", "--at", str(height))
    assert text.returncode == 0 and f"state after block {height}" in text.stdout

    # An attacker's edits, each to its own copy of n1's chain.
    original = cluster.cfg.node_data_dir("n1") / "blocks.dat"
    order_height, index, order, leaf, signature = first_signed_order(original)

    def copy(name: str) -> Path:
        target = tmp_path / name / "blocks.dat"
        target.parent.mkdir()
        shutil.copy(original, target)
        return target

    altered = copy("altered-order")
    forged_leaf = leaf[:2] + encode_command(order._replace(qty=order.qty + 1))
    assert len(forged_leaf) == len(leaf)
    tamper.replace_in_proposal(altered, order_height, leaf, forged_leaf)
    rc, report = audit_json(cluster, "--data", str(altered.parent), "--no-store")
    assert rc == 1
    assert f"block {order_height}: commands_root" in "\n".join(report["problems"]), report["problems"]

    state = copy("altered-state")
    tamper.alter_state_hash(state, order_height)
    rc, report = audit_json(cluster, "--data", str(state.parent), "--no-store")
    assert rc == 1
    assert any(p.startswith(f"block {order_height}: state_hash") for p in report["problems"]), report["problems"]

    forged = copy("bad-signature")
    tamper.replace_in_proposal(forged, order_height, signature, signature[:-1] + bytes((signature[-1] ^ 1,)))
    rc, report = audit_json(cluster, "--data", str(forged.parent), "--no-store")
    assert rc == 1
    assert report["problems"] == [f"block {order_height} command {index}: the signature does not verify (account {order.account})"]

    text = dex_audit(cluster, "--data", str(forged.parent), "--no-store")
    assert text.returncode == 1 and f"block {order_height} command {index}: the signature does not verify" in text.stdout
