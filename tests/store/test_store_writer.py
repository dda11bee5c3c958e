"""The store writer on a chain built with the engine, on SQLite and PostgreSQL:
migrations, exactly-once batches, racing writers, restarts, order history,
exact decimals, and the audit comparison naming what was tampered with."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, insert, select, update

from dex.core.commands import AmendOrder, CancelOrder, PlaceOrder
from dex.core.events import Trade
from dex.core.types import Side
from dex.ledger.chain import Chain
from dex.store import db, writer as writer_module
from dex.store.check import compare_store
from dex.store.models import Block, OrderRow, StoreCursor, TradeRow
from dex.store.rows import decode_block
from dex.store.synthetic import MAKER_LOTS, MID_TICKS, SYMBOL, ChainBuilder, fund, trading_blocks
from dex.store.writer import Diverged, StoreWriter
from tests import kit

TABLES = {"blocks", "trades", "orders", "store_cursor", "alembic_version"}


def ledger_trades(chain) -> list[Trade]:
    return [ev for block in chain.blocks(1, chain.height + 1) for events in decode_block(block) for ev in events if ev.__class__ is Trade]


def count(url: str, table) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def run_sql(url: str, *statements) -> None:
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.execute(s)
    finally:
        engine.dispose()


def write_all(url: str, chain) -> StoreWriter:
    w = StoreWriter(url, chain, kit.markets(), node_id="t")
    w.step()
    w.stop()
    return w


def take_over(w: StoreWriter) -> int:
    """Step `w` until it holds the writer lock (a released PostgreSQL session
    lock is free once the server has ended that session); returns blocks written."""
    from cluster.local import wait_for

    written: list[int] = []
    wait_for(lambda: written.append(w.step()) or w.status()["writer"], 10, interval_s=0.05, what=f"{w.node_id} to take the writer lock")
    return sum(written)


# ---------------------------------------------------------------- migrations


def test_migrations_create_the_schema_once_even_when_four_nodes_race(store_url):
    engine = db.make_engine(store_url)
    errors = []

    def migrate():
        try:
            db.migrate(engine)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert db.current_revision(engine) == "0001"
    with engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
        assert TABLES <= names, names
        assert conn.execute(select(StoreCursor.id, StoreCursor.height)).all() == [(1, 0)]
        indexes = {i["name"] for i in conn.dialect.get_indexes(conn, "trades")}
        assert {"ix_trades_symbol_time_ms", "ix_trades_maker_account_time_ms", "ix_trades_taker_account_time_ms", "ix_trades_height"} <= indexes
    db.migrate(engine, "base", down=True)
    with engine.connect() as conn:
        assert not ({"blocks", "trades"} & set(conn.dialect.get_table_names(conn)))
    db.migrate(engine)
    assert db.current_revision(engine) == "0001"
    engine.dispose()


def test_sqlite_is_in_wal_mode_with_a_busy_timeout(sqlite_url):
    engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


# --------------------------------------------------------------- exactly once


def test_every_trade_written_once_with_its_block(store_url, builder):
    made = trading_blocks(builder, 30, 50)
    trades = ledger_trades(builder.chain)
    assert made == len(trades) > 1000

    w = write_all(store_url, builder.chain)

    assert w.cursor_height == builder.chain.height
    assert w.trades_written == len(trades)
    assert count(store_url, TradeRow) == len(trades)
    assert count(store_url, Block) == builder.chain.height
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        row = conn.execute(select(TradeRow.__table__).where(TradeRow.trade_id == trades[0].trade_id)).one()
        block = builder.chain.get(row.height)
        assert row.block_hash == block.hash.hex()
        assert row.price == Decimal("50000.00") and row.price_ticks == MID_TICKS
        assert row.qty == Decimal("0.00020") and row.qty_lots == MAKER_LOTS
        cursor = conn.execute(select(StoreCursor.height, StoreCursor.block_hash)).one()
        assert cursor == (builder.chain.height, builder.chain.head_hash.hex())
        statuses = Counter(conn.execute(select(OrderRow.status)).scalars())
    engine.dispose()
    # Every maker was taken by the next block's IOC taker, except the last block's 50.
    assert statuses == {"FILLED": len(trades) + 29, "NEW": 50}, statuses


def test_a_second_pass_writes_nothing_more(store_url, builder):
    trading_blocks(builder, 5, 20)
    write_all(store_url, builder.chain)
    before = count(store_url, TradeRow)
    again = StoreWriter(store_url, builder.chain, kit.markets())
    assert again.step() == 0
    again.stop()
    assert count(store_url, TradeRow) == before


def test_small_batches_and_a_restart_between_them(store_url, builder, monkeypatch):
    trading_blocks(builder, 20, 10)
    monkeypatch.setattr(writer_module, "BATCH_BLOCKS_MAX", 3)
    first = StoreWriter(store_url, builder.chain, kit.markets())
    conn = first._connect()
    assert first.write_batch(conn) == 3
    assert first.write_batch(conn) == 3
    first.stop()  # a restart: the next writer starts from the committed cursor
    second = StoreWriter(store_url, builder.chain, kit.markets())
    written = second.step()
    second.stop()
    assert written == builder.chain.height - 6
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


def test_a_batch_stops_at_the_trade_bound(store_url, builder, monkeypatch):
    trading_blocks(builder, 10, 40)
    monkeypatch.setattr(writer_module, "BATCH_TRADES_MAX", 50)
    w = StoreWriter(store_url, builder.chain, kit.markets())
    conn = w._connect()
    # funding, 0 trades; the first makers, 0; 40; 40: 80 >= 50 after the fourth block
    assert w.write_batch(conn) == 4
    assert w.trades_written == 80
    w.stop()


def test_racing_writers_write_each_block_once(store_url, builder, monkeypatch):
    """Two writers that both ignore the writer lock still serialize on the cursor row."""
    trading_blocks(builder, 40, 20)
    monkeypatch.setattr(writer_module, "BATCH_BLOCKS_MAX", 2)
    writers = [StoreWriter(store_url, builder.chain, kit.markets(), node_id=f"w{i}") for i in range(2)]
    db.migrate(db.make_engine(store_url))
    errors = []
    totals = [0, 0]

    def drain(i):
        try:
            conn = writers[i]._connect()
            while (n := writers[i].write_batch(conn)) > 0:
                totals[i] += n
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in writers:
        w.stop()
    assert not errors, errors
    assert sum(totals) == builder.chain.height, totals
    assert count(store_url, TradeRow) == len(ledger_trades(builder.chain))
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


def test_only_one_node_takes_the_writer_lock(store_url, builder):
    trading_blocks(builder, 3, 5)
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a")
    b = StoreWriter(store_url, builder.chain, kit.markets(), node_id="b")
    assert a.step() == builder.chain.height and a.status()["writer"]
    assert b.step() == 0 and not b.status()["writer"]
    assert b.status()["cursorHeight"] == builder.chain.height
    a.stop()  # the lock is released with a's connection (or its flock)
    trading_blocks(builder, 2, 5)
    assert take_over(b) == 2
    b.stop()
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


def test_a_node_that_is_not_the_writer_polls_on_its_interval_not_per_block(store_url, builder, monkeypatch):
    """Three of four nodes do not write: each used to query the store on
    every block (~100 a second at saturation, 5% of a core each)."""
    from cluster.local import wait_for

    monkeypatch.setattr(writer_module, "CURSOR_POLL_S", 2.0)  # the window below must end well before the next poll
    trading_blocks(builder, 3, 5)
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a")
    b = StoreWriter(store_url, builder.chain, kit.markets(), node_id="b")
    assert a.step() == builder.chain.height
    stepped = threading.Event()
    real_step = b._step
    b._step = lambda: (stepped.set(), real_step())[1]
    b.start()
    try:
        assert stepped.wait(5), "b never polled"
        # b reads the cursor, then tries the lock: wait for both (a step is
        # under way when `stepped` is set, not done).
        wait_for(lambda: b.status()["cursorHeight"] == builder.chain.height and b.other_writer, 5, what="b to read the cursor and find the lock taken")
        assert not a.other_writer
        stepped.clear()
        trading_blocks(builder, 1, 5)
        b.notify()  # a block: not b's to write
        assert not stepped.wait(0.25), "a node that is not the writer queried the store on a block"
        assert stepped.wait(5), "b stopped polling"
        a.step()
        a.stop()  # the lock is free: b takes it on its next poll
        wait_for(lambda: b.status()["writer"], 10, what="b to take the writer lock")
    finally:
        b.stop()
        a.stop()
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


# --------------------------------------------------------------- order history


def test_orders_keep_their_final_status_across_batches(store_url, builder):
    markets = kit.markets()
    m = markets.market(SYMBOL)
    builder.block(fund([1, 2]))
    builder.block([
        PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=MID_TICKS, qty=100),  # order 1: partly filled later
        PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=MID_TICKS + 50, qty=100),  # order 2: cancelled later
        PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=MID_TICKS + 60, qty=100),  # order 3: amended later
    ])
    w = StoreWriter(store_url, builder.chain, markets)
    assert w.step() == 2  # orders 1..3 are in the store, NEW
    builder.block([PlaceOrder(account=2, symbol=SYMBOL, side=Side.BUY, price=MID_TICKS, qty=40)])  # order 4 fills 40 of order 1
    builder.block([CancelOrder(account=1, symbol=SYMBOL, order_id=2)])
    builder.block([AmendOrder(account=1, symbol=SYMBOL, order_id=3, price=MID_TICKS + 70, qty=80)])
    assert w.step() == 3
    w.stop()
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        rows = {r.order_id: r for r in conn.execute(select(OrderRow.__table__)).all()}
    engine.dispose()
    assert (rows[1].status, rows[1].filled_lots, rows[1].updated_height) == ("PARTIALLY_FILLED", 40, 3)
    assert (rows[2].status, rows[2].filled_lots) == ("CANCELED", 0)
    assert (rows[3].status, rows[3].price_ticks, rows[3].qty_lots) == ("NEW", MID_TICKS + 70, 80)
    assert (rows[4].status, rows[4].filled_lots, rows[4].side, rows[4].type) == ("FILLED", 40, "BUY", "LIMIT")
    assert rows[1].account == 1 and rows[1].symbol == SYMBOL and m.symbol == SYMBOL


def test_a_client_order_id_of_any_allowed_text_arrives_as_it_was(store_url, builder):
    """COPY text escaping: any printable ASCII (the engine's rule), backslashes and a literal \\N included."""
    odd = ["back\\slash", "\\N", "ends\\", " spaced ", "q\"u'o`te;,|", "".join(map(chr, range(0x20, 0x20 + 36)))]
    builder.block(fund([1]))
    builder.block([
        PlaceOrder(account=1, symbol=SYMBOL, side=Side.SELL, price=MID_TICKS + i, qty=10, client_order_id=cid) for i, cid in enumerate(odd)
    ])
    write_all(store_url, builder.chain)
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        stored = conn.execute(select(OrderRow.client_order_id).order_by(OrderRow.order_id)).scalars().all()
    engine.dispose()
    assert stored == odd


# -------------------------------------------------------------- failure cases


def test_a_chain_that_starts_above_the_cursor_does_not_write(store_url, builder, tmp_path):
    trading_blocks(builder, 10, 5)
    rebuilt = Chain(tmp_path / "rebuilt" / "blocks.dat")
    rebuilt.reset_to(builder.chain.header(6))  # as a node rebuilt from a snapshot at 6
    for block in builder.chain.blocks(7, builder.chain.height + 1):
        rebuilt.append(block.header, block.proposal, block.results)
    w = StoreWriter(store_url, rebuilt, kit.markets())
    assert w.step() == 0
    status = w.status()
    assert status["cannotBackfill"] and not status["writer"] and status["cursorHeight"] == 0
    w.stop()
    assert count(store_url, TradeRow) == 0
    full = write_all(store_url, builder.chain)  # a node with the whole chain writes
    assert full.cursor_height == builder.chain.height
    again = StoreWriter(store_url, rebuilt, kit.markets())  # now the rebuilt one may carry on
    trading_blocks(builder, 1, 5)
    last = builder.chain.get(builder.chain.height)
    rebuilt.append(last.header, last.proposal, last.results)
    assert again.step() == 1
    again.stop()
    rebuilt.close()


def test_a_cursor_on_another_chain_is_refused(store_url, builder):
    trading_blocks(builder, 3, 5)
    write_all(store_url, builder.chain)
    run_sql(store_url, update(StoreCursor).values(block_hash="ab" * 32))
    trading_blocks(builder, 1, 5)
    w = StoreWriter(store_url, builder.chain, kit.markets())
    with pytest.raises(Diverged):
        w.step()
    w.stop()


def test_an_unreachable_database_is_reported_not_raised(tmp_path, builder):
    trading_blocks(builder, 2, 5)
    w = StoreWriter("postgresql+psycopg2://postgres@127.0.0.1:1/none", builder.chain, kit.markets())
    w.start()
    from cluster.local import wait_for

    status = wait_for(lambda: (s := w.status())["lastError"] and s, 30, what="the writer to report the unreachable database")
    w.stop()
    assert status["up"] is False and status["cursorHeight"] is None and "OperationalError" in status["lastError"]


# ------------------------------------------------------------------ the audit


def test_compare_store_names_each_tampered_row(store_url, builder):
    trading_blocks(builder, 8, 10)
    write_all(store_url, builder.chain)
    trades = ledger_trades(builder.chain)
    deleted, altered = trades[3], trades[17]
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        h_deleted = conn.execute(select(TradeRow.height).where(TradeRow.trade_id == deleted.trade_id)).scalar_one()
        h_altered = conn.execute(select(TradeRow.height).where(TradeRow.trade_id == altered.trade_id)).scalar_one()
        extra = dict(conn.execute(select(TradeRow.__table__).where(TradeRow.trade_id == trades[30].trade_id)).one()._mapping)
    engine.dispose()
    extra.update(trade_id=10**9)
    run_sql(
        store_url,
        delete(TradeRow).where(TradeRow.trade_id == deleted.trade_id),
        update(TradeRow).where(TradeRow.trade_id == altered.trade_id).values(qty_lots=altered.qty + 1),
        insert(TradeRow).values(**extra),
        delete(Block).where(Block.height == 2),
    )
    problems = compare_store(store_url, builder.chain, markets=kit.markets())
    text_ = "\n".join(problems)
    assert f"trades: block {h_deleted}: trade {deleted.trade_id} missing (deleted)" in problems, text_
    assert any(p.startswith(f"trades: block {h_altered}: trade {altered.trade_id} altered: qty_lots") for p in problems), text_
    assert any(f"trade {10**9} is not in the ledger" in p for p in problems), text_
    assert "blocks: block 2: row missing (deleted)" in problems, text_


def test_compare_store_sees_an_altered_decimal_only_with_markets(store_url, builder):
    trading_blocks(builder, 3, 5)
    write_all(store_url, builder.chain)
    victim = ledger_trades(builder.chain)[0]
    run_sql(store_url, update(TradeRow).where(TradeRow.trade_id == victim.trade_id).values(price=Decimal("1.5")))
    problems = compare_store(store_url, builder.chain, markets=kit.markets())
    assert len([p for p in problems if f"trade {victim.trade_id} altered: price" in p]) == 1, problems
    assert compare_store(store_url, builder.chain) == []  # integers only: they are untouched
    progress = []
    compare_store(store_url, builder.chain, progress=lambda h, through: progress.append((h, through)))
    assert progress and progress[-1] == (builder.chain.height, builder.chain.height)


# ------------------------------------------------------------------ config


def test_config_selects_the_store(tmp_path, monkeypatch):
    from dex.config import load_cluster
    from dex.store.writer import for_node
    from tests.cluster.harness import write_config

    monkeypatch.delenv("DATABASE_URL", raising=False)
    path = write_config(tmp_path / "on", name="on", ports=list(range(21000, 21008)))
    cfg = load_cluster(path)
    assert cfg.store and cfg.database_url is None
    assert db.database_url(cfg) == f"sqlite:///{cfg.data_dir / 'trades.sqlite'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://dex:pw@db:5432/dex")
    cfg = load_cluster(path)
    assert db.database_url(cfg) == "postgresql+psycopg2://dex:pw@db:5432/dex"
    assert db.redact(db.database_url(cfg)) == "postgresql+psycopg2://dex:***@db:5432/dex"
    off = load_cluster(write_config(tmp_path / "off", name="off", ports=list(range(21000, 21008)), settings={"store": 0}))
    assert off.store is False and for_node(off, "n1", chain=None) is None
    monkeypatch.setenv("DEX_STORE", "0")
    assert load_cluster(path).store is False


def test_a_writer_without_a_leader_hands_the_lock_over(store_url, builder, monkeypatch):
    """A partitioned node (no leader with a quorum) must not keep the store waiting."""
    monkeypatch.setattr(writer_module, "UNHEALTHY_RELEASE_S", 0.0)
    trading_blocks(builder, 3, 5)
    healthy = {"a": True}
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a", healthy=lambda: healthy["a"])
    b = StoreWriter(store_url, builder.chain, kit.markets(), node_id="b")
    assert a.step() == builder.chain.height and a.status()["writer"]
    healthy["a"] = False
    trading_blocks(builder, 1, 5)
    assert a.step() == 0 and not a.status()["writer"]
    assert a.step() == 0 and not a.status()["writer"]  # unhealthy: it does not take the lock again
    assert take_over(b) == 1
    a.stop()
    b.stop()
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


# ---------------------------------------------------------- reading ahead

def by_symbol() -> dict:
    """The markets as the writer keeps them."""
    return {m.symbol: m for m in kit.markets().markets}


def rows_of(batch) -> tuple:
    return (batch.first_height, batch.last_height, batch.last_hash, batch.blocks, batch.trades, batch.new_orders,
            {oid: (t.filled_delta, t.final, t.price, t.qty, t.height) for oid, t in batch.touched.items()})


def direct(chain, start: int, stop: int):
    batch = writer_module.BatchRows(markets=by_symbol())
    for block in chain.blocks(start, stop + 1):
        batch.add(block, decode_block(block))
    return batch


def test_a_batch_read_ahead_is_extended_with_blocks_that_landed_since(builder, monkeypatch):
    trading_blocks(builder, 6, 10)
    monkeypatch.setattr(writer_module, "BATCH_BLOCKS_MAX", 8)
    reader = writer_module.BatchReader(builder.chain, by_symbol())
    try:
        reader.ahead(3)
        ahead = reader._ahead[1].result(timeout=10)
        assert (ahead.first_height, ahead.last_height) == (3, builder.chain.height)
        trading_blocks(builder, 6, 10)  # more blocks land while the batch before is in the database
        batch = reader.take(3, builder.chain.height)
        assert batch is ahead  # used, not read again ...
        assert rows_of(batch) == rows_of(direct(builder.chain, 3, 10))  # ... and extended to the block bound
        assert reader._ahead is None
    finally:
        reader.close()


def test_a_batch_read_ahead_from_elsewhere_or_another_chain_is_not_used(builder, tmp_path):
    trading_blocks(builder, 6, 10)
    reader = writer_module.BatchReader(builder.chain, by_symbol())
    other = ChainBuilder(tmp_path / "other" / "blocks.dat", kit.markets(), time_ms=1_800_000_000_000)
    try:
        reader.ahead(3)
        stale = reader._ahead[1].result(timeout=10)
        batch = reader.take(4, builder.chain.height)  # the cursor ended elsewhere
        assert batch is not stale and rows_of(batch) == rows_of(direct(builder.chain, 4, builder.chain.height))

        trading_blocks(other, 6, 10)  # same heights, other hashes
        reader.ahead(3)
        stale = reader._ahead[1].result(timeout=10)
        reader.chain = other.chain  # as after a reset to other blocks
        batch = reader.take(3, other.chain.height)
        assert batch is not stale and rows_of(batch) == rows_of(direct(other.chain, 3, other.chain.height))
    finally:
        reader.close()
        other.close()


def test_an_error_while_reading_ahead_reaches_the_writer(builder, monkeypatch):
    trading_blocks(builder, 3, 5)
    reader = writer_module.BatchReader(builder.chain, by_symbol())

    def broken(block):
        raise ValueError(f"cannot decode block {block.header.height}")

    monkeypatch.setattr(writer_module, "decode_block", broken)
    try:
        reader.ahead(2)
        with pytest.raises(ValueError, match="cannot decode block 2"):
            reader.take(2, builder.chain.height)
    finally:
        reader.close()


# ------------------------------------------------------- the leader and the lock


def test_the_leader_leaves_the_writing_to_a_follower(store_url, builder):
    """A leader holding the lock gives it up at its next step; a leader that
    does not hold it does not take it while the store keeps up."""
    trading_blocks(builder, 3, 5)
    leads = {"a": False}
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a", leading=lambda: leads["a"])
    b = StoreWriter(store_url, builder.chain, kit.markets(), node_id="b")
    assert a.step() == builder.chain.height and a.status()["writer"]  # a follower: it writes
    leads["a"] = True
    trading_blocks(builder, 2, 5)
    assert a.step() == 0 and not a.status()["writer"]  # it leads now: the lock goes
    assert a.step() == 0 and not a.status()["writer"]  # and it does not take it back while b can write
    assert take_over(b) == 2 and b.status()["writer"]
    trading_blocks(builder, 1, 5)
    assert a.step() == 0 and not a.status()["writer"]
    assert b.step() == 1
    a.stop()
    b.stop()
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


def test_a_leader_takes_the_lock_when_no_follower_writes(store_url, builder, monkeypatch):
    """Every follower down or unable to write: the cursor stands behind the
    leader's chain for LEADER_TAKEOVER_S, and the leader writes (and keeps
    the lock while it leads)."""
    monkeypatch.setattr(writer_module, "LEADER_TAKEOVER_S", 0.0)
    trading_blocks(builder, 3, 5)
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a", leading=lambda: True)
    assert a.step() == builder.chain.height and a.status()["writer"]  # the cursor stands behind: no wait at 0 s
    trading_blocks(builder, 2, 5)
    assert a.step() == 2 and a.status()["writer"]  # took over: it keeps writing while it leads
    a.stop()
    assert compare_store(store_url, builder.chain, markets=kit.markets()) == []


def test_a_leader_does_not_take_the_lock_while_the_cursor_moves(store_url, builder, monkeypatch):
    monkeypatch.setattr(writer_module, "LEADER_TAKEOVER_S", 3600.0)
    trading_blocks(builder, 3, 5)
    a = StoreWriter(store_url, builder.chain, kit.markets(), node_id="a", leading=lambda: True)
    for _ in range(3):
        assert a.step() == 0 and not a.status()["writer"]
    assert a.status()["cursorHeight"] == 0 and a.other_writer
    a.stop()
