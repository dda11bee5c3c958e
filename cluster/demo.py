"""The failover demo: drive a running local cluster through a leader kill and back.

`dex cluster demo` (the cluster must be up: `make up`) tells the story on
screen: two traders fund themselves from the faucet and trade through every
node; the leader is SIGKILLed; the cluster elects another and trading goes on;
the killed node restarts, catches up from the others, and every node ends at
the same head and state hash. It finishes by checking that every order the
cluster acknowledged is in the ledger exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from cluster import local
from dex.auth import Keypair
from dex.client import Client, DexError
from dex.config import ClusterConfig

LOAD_BEFORE_KILL_S = 3.0
LOAD_AFTER_FAILOVER_S = 3.0
FAILOVER_TIMEOUT_S = 15.0
CATCH_UP_TIMEOUT_S = 30.0


class _Trader(threading.Thread):
    """Places crossing orders through every node, round robin, until stopped."""

    def __init__(self, cfg: ClusterConfig, keys: Keypair, side: str) -> None:
        super().__init__(daemon=True)
        self.urls = [n.api_url for n in cfg.nodes]
        self.keys = keys
        self.side = side
        self.stop = threading.Event()
        self.acknowledged: dict[str, int] = {}  # client order id -> order id
        self.last_ack_s = 0.0
        self.errors = 0

    def run(self) -> None:
        i = 0
        clients = [Client(self.urls[k:] + self.urls[:k], self.keys, timeout_s=5) for k in range(len(self.urls))]
        while not self.stop.is_set():
            client = clients[i % len(clients)]
            cid = f"demo-{self.side[0]}-{self.keys.account % 10**6}-{i}"
            price = "100.00" if self.side == "BUY" else "99.00"
            try:
                r = client.place_order("ETHUSDT", self.side, price=price, quantity="0.1", client_order_id=cid, resp_type="ACK")
                self.acknowledged[cid] = r["orderId"]
                self.last_ack_s = time.monotonic()
            except DexError:
                self.errors += 1
            i += 1
        for c in clients:
            c.close()


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _heads(cfg: ClusterConfig) -> dict[str, tuple]:
    st = local.status(cfg)
    return {n["id"]: (n.get("headHeight"), n.get("headHash"), n.get("stateHash")) for n in st["nodes"] if n.get("reachable")}


def demo(cfg: ClusterConfig) -> dict:
    st = local.status(cfg)
    if not st.get("leader"):
        raise local.ClusterError("the cluster has no leader: start it with `make up` (or `dex cluster up --detach`)")
    _say(f"cluster {cfg.name}: {len(cfg.nodes)} nodes, leader {st['leader']} (term {st['term']})")

    buyer, seller = Keypair.generate(), Keypair.generate()
    with Client([n.api_url for n in cfg.nodes], buyer) as c:
        c.deposit("USDT", "1000000")
    with Client([n.api_url for n in cfg.nodes], seller) as c:
        c.deposit("ETH", "100000")
    _say(f"two traders funded from the faucet (accounts {buyer.account} and {seller.account})")

    traders = [_Trader(cfg, buyer, "BUY"), _Trader(cfg, seller, "SELL")]
    for t in traders:
        t.start()
    _say("trading through every node in turn ...")
    deadline = time.monotonic() + LOAD_BEFORE_KILL_S
    local.wait_for(lambda: time.monotonic() > deadline, LOAD_BEFORE_KILL_S + 1, what="load")
    acked = sum(len(t.acknowledged) for t in traders)
    st = local.status(cfg)
    leader = st["leader"]
    _say(f"{acked} orders committed so far; head at height {max(st.get('heights') or [0])}")

    _say(f"SIGKILL the leader, {leader}")
    killed_at = time.monotonic()
    local.kill_node(cfg, leader)

    def new_leader():
        s = local.status(cfg)
        return s.get("leader") if s.get("leader") not in (None, leader) else None

    successor = local.wait_for(new_leader, FAILOVER_TIMEOUT_S, what="a new leader")
    elected_s = time.monotonic() - killed_at
    local.wait_for(lambda: max(t.last_ack_s for t in traders) > killed_at, FAILOVER_TIMEOUT_S, what="an order committed after the kill")
    resumed_s = max(t.last_ack_s for t in traders) - killed_at
    _say(f"{successor} leads after {elected_s:.2f} s; trading resumed {resumed_s:.2f} s after the kill")

    deadline = time.monotonic() + LOAD_AFTER_FAILOVER_S
    local.wait_for(lambda: time.monotonic() > deadline, LOAD_AFTER_FAILOVER_S + 1, what="load")
    _say(f"restarting {leader} on its own data ...")
    local.start_node(cfg, leader)
    for t in traders:
        t.stop.set()
    for t in traders:
        t.join()

    def caught_up():
        heads = _heads(cfg)
        return heads if len(heads) == len(cfg.nodes) and len(set(heads.values())) == 1 else None

    restarted_at = time.monotonic()
    heads = local.wait_for(caught_up, CATCH_UP_TIMEOUT_S, what=f"{leader} to catch up")
    height, head_hash, state_hash = next(iter(heads.values()))
    _say(f"{leader} caught up in {time.monotonic() - restarted_at:.2f} s; every node at height {height}")
    for node_id in sorted(heads):
        h = heads[node_id]
        _say(f"  {node_id}  height {h[0]}  head {h[1][:16]}  state {h[2][:16]}")

    # Every acknowledged order is in the ledger exactly once.
    acknowledged = {cid: oid for t in traders for cid, oid in t.acknowledged.items()}
    seen: Counter = Counter()
    with Client(cfg.nodes[0].api_url) as c:
        for h in range(1, height + 1):
            for cmd in c.block(h)["commands"]:
                for ev in cmd["events"]:
                    if ev["event"] == "OrderAccepted" and (ev.get("clientOrderId") or "").startswith("demo-"):
                        seen[ev["clientOrderId"]] += 1
    lost = [cid for cid in acknowledged if seen[cid] == 0]
    duplicated = [cid for cid, n in seen.items() if n > 1]
    _say(f"{len(acknowledged)} acknowledged orders: {len(lost)} lost, {len(duplicated)} duplicated "
         f"({sum(t.errors for t in traders)} requests failed during the election and were not acknowledged)")
    return {
        "killed": leader,
        "new_leader": successor,
        "elected_s": elected_s,
        "resumed_s": resumed_s,
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "height": height,
    }
