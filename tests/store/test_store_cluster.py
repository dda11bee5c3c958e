"""The trade store under a real cluster: every trade in the database exactly
once, with its block's height and hash, through leader kills (SQLite and
PostgreSQL) and through a PostgreSQL outage of 20 s while trading goes on.

The check at the end compares the store with every node's own chain file
(dex.store.check.compare_store: per block, count, quantity sum and a digest
of the trades, naming any deleted, altered or extra row), after the nodes
are stopped so the chain files are quiet.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from cluster import local
from dex.auth import Keypair
from dex.client import Client, DexError
from dex.config import load_cluster
from dex.ledger.chain import Chain
from dex.store import db
from dex.store.check import compare_store
from dex.store.models import StoreCursor, TradeRow
from dex.store.rows import decode_block
from tests.cluster.harness import Cluster, metric_value
from tests.store.pg import FreshDatabase, PrivatePostgres, shared_server_or_skip

TRADERS = 3
ACKS_STEP = 40
ACKS_TIMEOUT_S = 60.0
CAUGHT_UP_TIMEOUT_S = 120.0
WRITER_TIMEOUT_S = 30.0
OUTAGE_S = 20.0
TRADER_JOIN_TIMEOUT_S = 30.0
PRICE = "50000"
QUANTITY = "0.001"


@dataclass
class Traders:
    urls: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._trade, args=(i,), daemon=True) for i in range(TRADERS)]
        for t in self.threads:
            t.start()

    def count(self) -> int:
        with self.lock:
            return self.acked

    def wait_more(self, n: int, what: str) -> None:
        target = self.count() + n
        local.wait_for(lambda: self.count() >= target or self.failures, ACKS_TIMEOUT_S, what=f"{n} more acknowledged orders {what}")
        assert not self.failures, self.failures

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(TRADER_JOIN_TIMEOUT_S)
        assert not any(t.is_alive() for t in self.threads), "a trader is stuck"
        assert not self.failures, self.failures

    def _trade(self, index: int) -> None:
        rotated = self.urls[index:] + self.urls[:index]
        seller, buyer = Client(rotated, Keypair.generate()), Client(rotated[1:] + rotated[:1], Keypair.generate())
        try:
            seller.deposit("BTC", "100")
            buyer.deposit("USDT", "10000000")
            k = 0
            while not self.stop.is_set():
                for client, side in ((seller, "SELL"), (buyer, "BUY")):
                    try:
                        client.place_order("BTCUSDT", side, price=PRICE, quantity=QUANTITY, client_order_id=f"s{index}-{k}-{side[0]}")
                    except DexError as e:
                        if e.status != 503:  # 503: outcome unknown during a failover; the ledger decides
                            with self.lock:
                                self.failures.append(str(e))
                        continue
                    with self.lock:
                        self.acked += 1
                k += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self.lock:
                self.failures.append(f"trader {index}: {type(e).__name__}: {e}")
        finally:
            seller.close()
            buyer.close()


def store_of(cluster: Cluster, node_id: str) -> dict | None:
    s = cluster.self_status(node_id)
    return None if s is None else {**s["store"], "headHeight": s["headHeight"]}


def writer_node(cluster: Cluster, ids) -> str | None:
    writers = [n for n in ids if (s := store_of(cluster, n)) and s["writer"]]
    assert len(writers) <= 1, f"two writers at once: {writers}"
    return writers[0] if writers else None


def caught_up(cluster: Cluster, ids) -> int | None:
    """The common head, once every node in ids has it and sees the store's cursor there."""
    stores = [store_of(cluster, n) for n in ids]
    if any(s is None for s in stores):
        return None
    heads = {s["headHeight"] for s in stores}
    if len(heads) != 1 or any(s["cursorHeight"] != s["headHeight"] for s in stores):
        return None
    return heads.pop() or None


def check_store(cluster: Cluster, url: str) -> int:
    """Stop the nodes; compare the store with every node's chain. Returns the trades checked."""
    cluster.close()
    engine = db.make_engine(url)
    with engine.connect() as conn:
        cursor = conn.execute(select(StoreCursor.height)).scalar_one()
        stored = conn.execute(select(func.count()).select_from(TradeRow)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(TradeRow.trade_id)))).scalar_one()
    engine.dispose()
    assert stored == distinct
    for n in cluster.ids:
        with Chain(cluster.cfg.node_data_dir(n) / "blocks.dat") as chain:
            assert chain.base_height == 0 and chain.height == cursor, (n, chain.base_height, chain.height, cursor)
            in_ledger = sum(1 for b in chain.blocks(1, cursor + 1) for events in decode_block(b) for ev in events if type(ev).__name__ == "Trade")
            assert stored == in_ledger, f"{n}: the ledger has {in_ledger} trades, the store {stored}"
            problems = compare_store(url, chain, markets=cluster.cfg.markets)
            assert problems == [], f"{n}: " + "\n".join(problems[:20])
    return stored


@pytest.fixture(params=["sqlite", "postgresql"])
def store_cluster(request, cluster_config: Cluster, monkeypatch) -> tuple[Cluster, str]:
    if request.param == "postgresql":
        shared_server_or_skip()
        database = FreshDatabase()
        request.addfinalizer(database.drop)  # after the cluster is down (cluster_config's teardown runs first)
        monkeypatch.setenv("DATABASE_URL", database.url)
        cluster_config.cfg = load_cluster(cluster_config.cfg.path)
    assert (cluster_config.cfg.database_url is None) == (request.param == "sqlite")
    cluster_config.up()
    return cluster_config, db.database_url(cluster_config.cfg)


def test_every_trade_once_through_killing_the_writer_and_the_leader(store_cluster) -> None:
    cluster, url = store_cluster
    traders = Traders(cluster.urls)
    traders.start()
    try:
        traders.wait_more(ACKS_STEP, "before any kill")
        writer = local.wait_for(lambda: writer_node(cluster, cluster.ids), WRITER_TIMEOUT_S, what="a store writer")
        # The leader leaves the writing to a follower (dex/store/writer.py, LEADER_TAKEOVER_S).
        assert writer != cluster.wait_leader(cluster.ids), f"the leader {writer} writes the store"
        cluster.kill(writer)  # mid-write, quite likely: it writes every few blocks
        survivors = [n for n in cluster.ids if n != writer]
        cluster.wait_leader(survivors)
        new_writer = local.wait_for(lambda: writer_node(cluster, survivors), WRITER_TIMEOUT_S, what=f"a new writer after killing {writer}")
        assert new_writer != writer
        traders.wait_more(ACKS_STEP, f"after killing the writer {writer}")
        cluster.start(writer)

        leader = cluster.wait_leader(cluster.ids)
        cluster.kill(leader)
        survivors = [n for n in cluster.ids if n != leader]
        cluster.wait_leader(survivors, not_id=leader)
        traders.wait_more(ACKS_STEP, f"after killing the leader {leader}")
        cluster.start(leader)
        traders.wait_more(ACKS_STEP, "with every node back")
    finally:
        traders.finish()
    height = local.wait_for(lambda: caught_up(cluster, cluster.ids), CAUGHT_UP_TIMEOUT_S, what="the store's cursor at every node's head")
    checked = check_store(cluster, url)
    assert checked >= 2 * ACKS_STEP // 2, checked
    print(f"{url.split(':')[0]}: {checked} trades in {height} blocks, each once; writer {writer} and leader {leader} killed")


def test_database_down_for_20_s_trading_goes_on_and_the_store_catches_up(cluster_config: Cluster, monkeypatch) -> None:
    pg = PrivatePostgres()
    try:
        pg.start()
        database = FreshDatabase(host="127.0.0.1", port=pg.port, admin_db="postgres")
        monkeypatch.setenv("DATABASE_URL", database.url)
        cluster = cluster_config
        cluster.cfg = load_cluster(cluster.cfg.path)
        cluster.up()
        traders = Traders(cluster.urls)
        traders.start()
        try:
            traders.wait_more(ACKS_STEP, "before the outage")
            local.wait_for(lambda: (s := store_of(cluster, cluster.ids[0])) and s["cursorHeight"], WRITER_TIMEOUT_S, what="the store's first rows")

            pg.stop()
            stopped_at = time.monotonic()
            acks_at_stop = traders.count()
            seen_down: dict[str, dict] = {}
            metrics_down = None
            # The outage lasts OUTAGE_S whatever happens; meanwhile the lag must show.
            while time.monotonic() - stopped_at < OUTAGE_S:
                for n in cluster.ids:
                    s = store_of(cluster, n)
                    if s is not None and not s["up"] and s["lagBlocks"] and s["lagBlocks"] > 0 and s["lastError"]:
                        seen_down[n] = s
                if metrics_down is None and seen_down:
                    n = next(iter(seen_down))
                    text = cluster.http.get(cluster.url(n) + "/metrics").text
                    if metric_value(text, "dex_store_up") == 0 and (metric_value(text, "dex_store_lag_blocks") or 0) > 0:
                        metrics_down = text
                time.sleep(0.5)
            assert not traders.failures, traders.failures
            during = traders.count() - acks_at_stop
            assert during >= ACKS_STEP, f"only {during} orders acknowledged while the database was down"
            assert set(seen_down) == set(cluster.ids), f"the lag showed on {sorted(seen_down)} only"
            assert all(s["lagS"] > 0 for s in seen_down.values()), seen_down
            assert metrics_down is not None, "/metrics never showed dex_store_up 0 with a lag"
            status = cluster.get_json(cluster.ids[0], "/api/v1/cluster/status")
            assert all("store" in node and node["store"]["lagBlocks"] > 0 for node in status["nodes"] if node.get("reachable")), status

            pg.start()
            traders.wait_more(ACKS_STEP, "after the database came back")
        finally:
            traders.finish()
        local.wait_for(lambda: caught_up(cluster, cluster.ids), CAUGHT_UP_TIMEOUT_S, what="the store to catch up after the outage")
        checked = check_store(cluster, database.url)
        print(f"outage of {OUTAGE_S:.0f} s: {during} orders acknowledged meanwhile; {checked} trades in the store, each once")
    finally:
        pg.close()
