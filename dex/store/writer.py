"""The store writer: every committed block into the trade store, in height
order, exactly once, from whichever node holds the writer lock.

Feeding. Each node runs one `StoreWriter` thread. The node's block listener
only sets an event (`notify`): the Raft thread never waits on the database.
The writer reads the blocks to write from the node's own chain, so catching
up after an outage, a restart or a lost lock is the same code path as
writing the newest block.

Exactly once. The store holds a cursor, (height, hash) of the last block
written, in the one-row table `store_cursor`. Each transaction
  1. locks the cursor row (SELECT ... FOR UPDATE; BEGIN IMMEDIATE on SQLite),
  2. checks that this node's chain holds the cursor's block with that hash,
  3. inserts the rows of blocks cursor+1..N (bounded: BATCH_BLOCKS_MAX blocks,
     BATCH_TRADES_MAX trades, at least one block),
  4. moves the cursor to N, and commits.
Rows and cursor commit together or not at all, and the next transaction, on
any node, starts where the last committed one ended: a block is never
skipped (heights are consecutive from the cursor) and never written twice
(the cursor is past it). Two writers racing would serialize on the cursor
row; the second would find the cursor moved and write only what follows.
Primary keys on block height and trade id make any slip a loud error, not a
duplicate.

One writer at a time (to spare the database the race): on PostgreSQL the
holder of a session advisory lock (WRITER_LOCK_KEY) on the writer's own
connection, released by the server when that session ends (a SIGKILLed
node's socket closes); on SQLite an flock on `<file>.writer-lock`, released
by the kernel when the process dies. Other nodes poll the cursor (for their
status) and try the lock every CURSOR_POLL_S. The leader of a cluster of
more than one node leaves the writing to a follower (LEADER_TAKEOVER_S).

A node whose chain starts above the cursor (rebuilt from a snapshot:
chain.base_height > cursor) cannot supply the missing blocks: it does not
take the lock and says so in its status; a node with the full chain writes.

Failures. Any database error rolls the transaction back, drops the
connection (releasing the lock) and retries with bounded exponential backoff
(RETRY_S_MIN..RETRY_S_MAX); it is logged once per outage, and once more when
the store is reachable again. Trading never waits: the lag grows and shows
in `status()` (cluster status, /metrics) until the writer catches up.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg2.extensions
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from dex.store import db
from dex.store.models import CURSOR_ID, Block, OrderRow, StoreCursor, TradeRow, amount_text
from dex.store.rows import O_CID, ORDER_COLUMNS, TRADE_COLUMNS, BatchRows, decode_block

log = logging.getLogger("dex.store")

BATCH_BLOCKS_MAX = 500
BATCH_TRADES_MAX = 50_000
CURSOR_POLL_S = 1.0  # a node that is not writing reads the cursor / tries the lock this often
# After writing, the writer lets blocks gather this long before its next
# transaction: at low rates a transaction per block cost the node ~8 ms of
# p50 order latency (measured at 100 orders/s: 9.8 ms without the store,
# 18 ms with), as its Python work shares the GIL with Raft and the API.
WRITE_COALESCE_S = 0.1
RETRY_S_MIN = 0.2
RETRY_S_MAX = 5.0
STOP_TIMEOUT_S = 10.0
LAG_SAMPLES_MAX = 4096  # recent per-block lags (commit time - block time), for lagMsP99
ERROR_CHARS_MAX = 300
# A writer whose node has seen no leader with a quorum for this long gives
# the lock up: its chain may be stuck behind the cluster's (a partitioned
# node), and a node that keeps up should write instead. Short blips (an
# election) do not move the lock.
UNHEALTHY_RELEASE_S = 3.0
# The leader leaves the writing to a follower: it already parses, verifies,
# sequences and replicates every request, and the writer's Python work (rows,
# SQLAlchemy, SQLite) took a quarter of a leader's samples in the batch
# benchmark when the two landed on one node. A leader holding the lock gives
# it up; a leader not holding it takes it only when the cursor has stood
# behind its chain this long (no follower can write: all down, partitioned
# or rebuilt from a snapshot above the cursor), and then keeps it while it
# leads.
LEADER_TAKEOVER_S = 5.0
assert RETRY_S_MIN < RETRY_S_MAX and CURSOR_POLL_S <= RETRY_S_MAX
assert BATCH_BLOCKS_MAX >= 1 and BATCH_TRADES_MAX >= 1

_UPDATE_ORDER = text(
    "UPDATE orders SET "
    "filled_lots = filled_lots + :d, "
    "price_ticks = COALESCE(CAST(:p AS BIGINT), price_ticks), "
    "qty_lots = COALESCE(CAST(:q AS BIGINT), qty_lots), "
    "status = CASE "
    "  WHEN CAST(:final AS VARCHAR(16)) IS NOT NULL THEN CAST(:final AS VARCHAR(16)) "
    "  WHEN COALESCE(CAST(:q AS BIGINT), qty_lots) > 0 AND filled_lots + :d >= COALESCE(CAST(:q AS BIGINT), qty_lots) THEN 'FILLED' "
    "  WHEN filled_lots + :d > 0 THEN 'PARTIALLY_FILLED' "
    "  ELSE status END, "
    "updated_height = :h, update_ms = :t "
    "WHERE order_id = :oid"
)


class Diverged(RuntimeError):
    """The store's cursor names a block this node's chain holds with another hash."""


class BatchReader:
    """The rows of the next transaction, read from the chain: decoding the
    blocks after the batch in flight is done on a helper thread while that
    batch is in the database (psycopg2 and sqlite3 release the GIL while they
    wait on it), so the writer's Python work and the database's overlap.

    At most one batch is read ahead. A batch read ahead is used only if it
    starts where the cursor now ends and its last block is still this
    chain's (one hash covers the blocks before it, by the parent links);
    it is then extended with blocks that landed since, up to the bounds."""

    def __init__(self, chain, markets: dict) -> None:
        self.chain = chain
        self.markets = markets
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")
        self._ahead: tuple[int, Future] | None = None

    def take(self, start: int, head: int) -> BatchRows:
        """The rows of blocks start..(at most) head, within the bounds."""
        batch = None
        if self._ahead is not None:
            first, future = self._ahead
            self._ahead = None
            if first == start:
                got = future.result()  # re-raises what the helper raised
                if got.blocks and self.chain.hash_at(got.last_height) == bytes.fromhex(got.last_hash):
                    batch = got
        if batch is None:
            batch = BatchRows(markets=self.markets)
        return self._fill(batch, start, head)

    def ahead(self, start: int) -> None:
        """Start reading the batch from `start`, if the chain has blocks there."""
        if self._ahead is None and self.chain.height >= start:
            self._ahead = (start, self._pool.submit(self._fill, BatchRows(markets=self.markets), start, self.chain.height))

    def close(self) -> None:
        self._ahead = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, batch: BatchRows, start: int, head: int) -> BatchRows:
        first = batch.first_height or start
        after = batch.last_height + 1 if batch.blocks else start
        for block in self.chain.blocks(after, min(head, first + BATCH_BLOCKS_MAX - 1) + 1):
            if batch.blocks and len(batch.trades) >= BATCH_TRADES_MAX:
                break
            batch.add(block, decode_block(block))
        return batch


class StoreWriter:
    def __init__(self, url: str, chain, markets, *, node_id: str = "", clock=time.time, healthy=None, leading=None) -> None:
        """`healthy()`: whether this node follows a leader with a quorum (its
        chain keeps up); only a healthy node takes the writer lock.
        `leading()`: whether this node is the leader of a cluster with other
        nodes, which leaves the writing to them (LEADER_TAKEOVER_S)."""
        self.url = url
        self.chain = chain
        self.healthy = healthy if healthy is not None else (lambda: True)
        self.leading = leading if leading is not None else (lambda: False)
        self._unhealthy_since: float | None = None
        self._cursor_moved: tuple[int | None, float] = (None, 0.0)  # (cursor, monotonic time it was first seen)
        self._took_over = False  # this leader took the lock from a stalled store: keep it while leading
        self.markets = {m.symbol: m for m in markets.markets}
        # Symbols go into COPY lines unescaped (see _trade_lines).
        assert all(symbol.isascii() and symbol.isalnum() for symbol in self.markets), sorted(self.markets)
        self.node_id = node_id
        self.clock = clock
        self.sqlite = db.is_sqlite(url)
        self._engine = None
        self._conn = None
        self._migrated = False
        self._lock_fd: int | None = None
        self._holding = False
        self.other_writer = False  # the lock was held by another node at the last try: poll, do not wake per block
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        # What status() reports, written by the writer thread.
        self.cursor_height: int | None = None
        self.up = False
        self.last_error: str | None = None
        self.cannot_backfill = False
        self.blocks_written = 0
        self.trades_written = 0
        self.lag_ms_recent: deque[int] = deque(maxlen=LAG_SAMPLES_MAX)
        self._reader = BatchReader(chain, self.markets)
        self._outage = False
        self.diverged = False

    # ------------------------------------------------------------ lifecycle

    def notify(self, *_block) -> None:
        """A block listener: O(1), never blocks. The writer wakes once per
        write, not per block: setting a set Event still takes its lock and
        notifies (a few % of a node's CPU at ~100 blocks/s)."""
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        assert self._thread is None
        self._thread = threading.Thread(target=self._run, name=f"store-writer-{self.node_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("store writer still busy after %.0f s; leaving it (its transaction rolls back on exit)", timeout_s)
                return
        self._reader.close()
        self._disconnect()
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        delay = RETRY_S_MIN
        while not self._stopping.is_set():
            self._wake.clear()  # before the step: a block that lands during it wakes the next one at once
            try:
                written = self.step()
            except Diverged as e:
                self._fail(e)
                log.critical("store writer stopped: %s", e)
                self.diverged = True
                return
            except (SQLAlchemyError, OSError) as e:
                self._fail(e)
                self._stopping.wait(delay)  # new blocks do not cut the backoff short
                delay = min(delay * 2, RETRY_S_MAX)
                continue
            except Exception as e:  # a bug here must not take the node down
                self._fail(e)
                log.exception("store writer error")
                self._stopping.wait(RETRY_S_MAX)
                continue
            delay = RETRY_S_MIN
            if written:
                self._stopping.wait(WRITE_COALESCE_S)
            if self.other_writer:  # another node writes: poll on the interval, not per block
                self._stopping.wait(CURSOR_POLL_S)
            else:  # the writer, or nobody yet (this node may take the lock on the next block)
                self._wake.wait(CURSOR_POLL_S)

    def _fail(self, e: BaseException) -> None:
        message = f"{type(e).__name__}: {e}".replace("\n", " ")[:ERROR_CHARS_MAX]
        if not self._outage:
            log.warning("trade store unavailable (%s), retrying; trading goes on, the lag grows: %s", db.redact(self.url), message)
            self._outage = True
        with self._state_lock:
            self.up = False
            self.last_error = message
        self._disconnect()

    # ------------------------------------------------------------- one step

    def step(self) -> int:
        """Connect, take the lock if free, write until caught up with this
        node's chain. Returns the number of blocks written. Raises database
        errors (the caller backs off)."""
        written = self._step()
        if self._outage:
            log.info("trade store reachable again (%s): writing from the cursor on", db.redact(self.url))
            self._outage = False
        with self._state_lock:
            self.up = True
            self.last_error = None
        return written

    def _step(self) -> int:
        conn = self._connect()
        healthy = self.healthy()
        self._unhealthy_since = None if healthy else (self._unhealthy_since or time.monotonic())
        if self._holding and not healthy and time.monotonic() - self._unhealthy_since >= UNHEALTHY_RELEASE_S:
            log.warning("no leader with a quorum for %.0f s: giving up the trade store's writer lock", UNHEALTHY_RELEASE_S)
            self._disconnect()  # releases the lock; the next step reconnects and only polls
            return 0
        leading = self.leading()
        if not leading:
            self._took_over = False
        if self._holding and leading and not self._took_over:
            log.info("this node leads the cluster: leaving the trade store's writing to a follower")
            self._disconnect()  # releases the lock; a follower takes it on its next poll
            self.other_writer = True  # poll on the interval from now on
            self._cursor_moved = (None, 0.0)  # its stall clock starts at the next poll
            return 0
        if not self._holding:
            self._poll_cursor(conn)
            if self.cannot_backfill or not healthy:
                return 0
            if leading and not self._store_stalled():
                self.other_writer = True  # a follower writes, or will: poll on the interval
                return 0
            if not self._try_lock(conn):
                return 0
            self._took_over = leading
        written = 0
        while not self._stopping.is_set():
            n = self.write_batch(conn)
            if n == 0:
                break
            written += n
        if self.cannot_backfill and self._holding:
            log.warning(
                "the store's cursor (%s) is below this node's chain base (%d): leaving the writing to a node with the full chain",
                self.cursor_height, self.chain.base_height,
            )
            self._disconnect()  # releases the lock (a PostgreSQL session lock goes with its connection)
        return written

    def _connect(self):
        if self._conn is not None:
            return self._conn
        if self._engine is None:
            self._engine = db.make_engine(self.url)
        if not self._migrated:
            db.migrate(self._engine)
            self._migrated = True
        self._conn = self._engine.connect()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._holding and not self.sqlite:
            # Unlock explicitly when the session still works, so the next
            # writer need not wait for the server to notice the session ended.
            try:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": db.WRITER_LOCK_KEY})
                conn.commit()
            except Exception:  # noqa: BLE001 - a broken session: the server releases the lock when it ends
                pass
        self._release_lock()
        if conn is not None:
            try:
                conn.invalidate()  # never back to the pool: it may hold the advisory lock
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def _try_lock(self, conn) -> bool:
        if self.sqlite:
            path = Path(make_url(self.url).database or "memory").with_suffix(".writer-lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.other_writer = True
                return False
            self._lock_fd = fd
        else:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": db.WRITER_LOCK_KEY}).scalar()
            conn.commit()
            if not got:
                self.other_writer = True
                return False
        self.other_writer = False
        self._holding = True
        log.info("this node is the trade store's writer (cursor at %s, chain head %d)", self.cursor_height, self.chain.height)
        return True

    def _store_stalled(self) -> bool:
        """Whether the cursor has stood behind this node's chain for
        LEADER_TAKEOVER_S (since this node first saw it there)."""
        cursor, since = self._cursor_moved
        return cursor is not None and cursor < self.chain.height and time.monotonic() - since >= LEADER_TAKEOVER_S

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._holding = False  # a PostgreSQL session lock goes with its connection

    def _poll_cursor(self, conn) -> None:
        if self.sqlite:
            with db.read_only(self._engine) as reader:
                height = reader.execute(select(StoreCursor.height).where(StoreCursor.id == CURSOR_ID)).scalar_one()
        else:
            with conn.begin():
                height = conn.execute(select(StoreCursor.height).where(StoreCursor.id == CURSOR_ID)).scalar_one()
        base = self.chain.base_height
        if height != self._cursor_moved[0]:
            self._cursor_moved = (height, time.monotonic())
        with self._state_lock:
            self.cursor_height = height
            self.cannot_backfill = height < base
            self.up = True

    # ------------------------------------------------------------ the batch

    def write_batch(self, conn) -> int:
        """One transaction: the blocks after the cursor, up to the bounds.
        Returns how many blocks it wrote (0: caught up, or cannot continue)."""
        with conn.begin():
            row = conn.execute(
                select(StoreCursor.height, StoreCursor.block_hash).where(StoreCursor.id == CURSOR_ID).with_for_update()
            ).one()
            cursor = row.height
            head = self.chain.height
            base = self.chain.base_height
            if cursor < base:
                with self._state_lock:
                    self.cursor_height, self.cannot_backfill = cursor, True
                return 0
            if cursor > 0:
                mine = self.chain.hash_at(cursor)
                if mine is not None and mine.hex() != row.block_hash:
                    raise Diverged(f"the store's cursor is block {cursor} {row.block_hash}, this node's chain has {mine.hex()}")
            if cursor >= head:
                with self._state_lock:
                    self.cursor_height = cursor
                return 0
            batch = self._reader.take(cursor + 1, head)
            if not batch.blocks:
                return 0
            assert batch.first_height == cursor + 1, (batch.first_height, cursor)
            self._reader.ahead(batch.last_height + 1)  # decoded while this batch is in the database
            self._insert(conn, batch)
            conn.execute(
                update(StoreCursor).where(StoreCursor.id == CURSOR_ID).values(height=batch.last_height, block_hash=batch.last_hash)
            )
        now_ms = int(self.clock() * 1000)
        with self._state_lock:
            self.cursor_height = batch.last_height
            self.cannot_backfill = False
            self.blocks_written += len(batch.blocks)
            self.trades_written += len(batch.trades)
            self.lag_ms_recent.extend(now_ms - b["time_ms"] for b in batch.blocks)
        return len(batch.blocks)

    def _insert(self, conn, batch: BatchRows) -> None:
        if not self.sqlite:
            copy_batch(conn, batch, self.clock)
        else:
            insert_batch_sqlite(conn, batch, self.clock)

    # --------------------------------------------------------------- status

    def status(self) -> dict:
        head = self.chain.height
        with self._state_lock:
            cursor = self.cursor_height
            out = {
                "enabled": True,
                "backend": "sqlite" if self.sqlite else "postgresql",
                "writer": self._holding,
                "up": self.up,
                "cursorHeight": cursor,
                "lagBlocks": None if cursor is None else max(0, head - cursor),
                "lagS": None,
                "lagMsP99": _p99(self.lag_ms_recent),
                "blocksWritten": self.blocks_written,
                "tradesWritten": self.trades_written,
                "cannotBackfill": self.cannot_backfill,
                "diverged": self.diverged,
                "lastError": self.last_error,
            }
        if cursor is not None:
            out["lagS"] = 0.0
            if cursor < head:
                oldest = self.chain.header(max(cursor + 1, self.chain.base_height))
                if oldest is not None:
                    out["lagS"] = round(max(0.0, self.clock() - oldest.time_ms / 1000), 3)
        return out


# A block's row, in column order (SQLite's INSERT and PostgreSQL's COPY).
_BLOCK_COLUMNS = ("height", "hash", "parent", "time_ms", "leader", "term", "commands_count", "trades_count", "state_hash", "written_ms")

# -------------------------------------------------------------------- SQLite
#
# On SQLite the rows go to the driver's executemany as they are, in column
# order: SQLAlchemy's insert() turned each row into a dict and ran every value
# through its type processors, about as much CPU as SQLite's own work for the
# row and its indexes (bench/store.py, docs/STORE.md). The only column with a
# processor is an Amount (decimal text on SQLite): the trades' price and qty,
# converted here by Amount's own conversion (amount_text).

def _insert_sql(table: str, columns: tuple) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_SQLITE_TRADES = _insert_sql("trades", TRADE_COLUMNS)
_SQLITE_ORDERS = _insert_sql("orders", ORDER_COLUMNS)
_SQLITE_BLOCKS = _insert_sql("blocks", _BLOCK_COLUMNS)
_T_PRICE, _T_QTY = TRADE_COLUMNS.index("price"), TRADE_COLUMNS.index("qty")
assert (_T_PRICE, _T_QTY) == (7, 8)
assert {c.name for c in TradeRow.__table__.columns} == set(TRADE_COLUMNS)
assert {c.name for c in OrderRow.__table__.columns} == set(ORDER_COLUMNS)
assert {c.name for c in Block.__table__.columns} == set(_BLOCK_COLUMNS)


def insert_batch_sqlite(conn, batch: BatchRows, clock=time.time) -> None:
    """The batch's rows into SQLite, in the connection's transaction."""
    run = conn.exec_driver_sql
    if batch.trades:
        run(_SQLITE_TRADES, [t[:7] + (amount_text(t[7]), amount_text(t[8])) + t[9:] for t in batch.trades])
    if batch.new_orders:
        run(_SQLITE_ORDERS, [tuple(row) for row in batch.new_orders.values()])
    updates = batch.order_updates()
    if updates:
        run(str(_UPDATE_ORDER), updates)  # named parameters (:d, :p, ...), which sqlite3 takes from dicts
    batch.stamp(int(clock() * 1000))  # last, so written_ms is as close to the commit as it can be
    run(_SQLITE_BLOCKS, [tuple(b[c] for c in _BLOCK_COLUMNS) for b in batch.blocks])


# ---------------------------------------------------------------- PostgreSQL
#
# On PostgreSQL the rows go in with COPY (text format), on the writer's own
# connection inside its transaction: measured at several times the rate of
# multi-row INSERT ... VALUES (insertmanyvalues / execute_values) for the
# same rows (docs/STORE.md). Updates to earlier orders are COPYed into a
# session temp table and applied by one UPDATE ... FROM.

_TOUCH_COLUMNS = ("oid", "d", "final", "p", "q", "h", "t")
_TOUCH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS store_touch (oid BIGINT, d BIGINT, final VARCHAR(16), p BIGINT, q BIGINT, h BIGINT, t BIGINT) "
    "ON COMMIT DELETE ROWS"
)
_TOUCH_UPDATE = (
    "UPDATE orders o SET "
    "filled_lots = o.filled_lots + u.d, "
    "price_ticks = COALESCE(u.p, o.price_ticks), "
    "qty_lots = COALESCE(u.q, o.qty_lots), "
    "status = CASE "
    "  WHEN u.final IS NOT NULL THEN u.final "
    "  WHEN COALESCE(u.q, o.qty_lots) > 0 AND o.filled_lots + u.d >= COALESCE(u.q, o.qty_lots) THEN 'FILLED' "
    "  WHEN o.filled_lots + u.d > 0 THEN 'PARTIALLY_FILLED' "
    "  ELSE o.status END, "
    "updated_height = u.h, update_ms = u.t "
    "FROM store_touch u WHERE o.order_id = u.oid"
)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value) -> str:
    if value is None:
        return "\\N"
    if value.__class__ is str:
        return value.translate(_ESCAPES)
    return str(value)


def _copy(cursor, table: str, columns: tuple, lines: list[str]) -> None:
    if not lines:
        return
    lines.append("")
    # Encoded as psycopg2 encodes a str source: in the connection's client encoding.
    data = "\n".join(lines).encode(psycopg2.extensions.encodings[cursor.connection.encoding])
    # One read, one PQputCopyData: psycopg2 holds the GIL for each chunk it reads, so
    # with its 8 KiB default a batch's COPY would queue behind the read-ahead thread.
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.BytesIO(data), size=len(data))


def _dict_lines(columns: tuple, rows) -> list[str]:
    return ["\t".join([_field(row[c]) for c in columns]) for row in rows]


def _trade_lines(trades: list[tuple]) -> list[str]:
    # Every field is a number, a hex hash, a side or a market symbol from the
    # config: nothing that needs COPY escaping (asserted on the symbol).
    return ["\t".join(map(str, t)) for t in trades]


def _order_lines(orders) -> list[str]:
    lines = []
    for row in orders:
        cells = list(map(str, row))
        cells[O_CID] = _field(row[O_CID])  # a client's string, or None
        lines.append("\t".join(cells))
    return lines


def copy_batch(conn, batch: BatchRows, clock=time.time) -> None:
    """The batch's rows into PostgreSQL, in the connection's transaction."""
    cursor = conn.connection.cursor()
    try:
        _copy(cursor, "trades", TRADE_COLUMNS, _trade_lines(batch.trades))
        _copy(cursor, "orders", ORDER_COLUMNS, _order_lines(batch.new_orders.values()))
        updates = batch.order_updates()
        if updates:
            cursor.execute(_TOUCH_TABLE)
            _copy(cursor, "store_touch", _TOUCH_COLUMNS, _dict_lines(_TOUCH_COLUMNS, updates))
            cursor.execute(_TOUCH_UPDATE)
        batch.stamp(int(clock() * 1000))  # last, so written_ms is as close to the commit as it can be
        _copy(cursor, "blocks", _BLOCK_COLUMNS, _dict_lines(_BLOCK_COLUMNS, batch.blocks))
    finally:
        cursor.close()


def _p99(samples) -> int | None:
    values = sorted(samples)
    return values[min(len(values) - 1, (len(values) * 99) // 100)] if values else None


def for_node(cfg, node_id: str, chain, replica=None) -> StoreWriter | None:
    """The node's writer, or None when the config turns the store off.
    With `replica`, the writer is healthy while the node sees a leader
    (itself with a quorum, or another node), and leaves the writing to a
    follower while it leads a cluster of more than one node."""
    if not cfg.store:
        return None

    def healthy() -> bool:
        leader = replica.leader_id
        return leader is not None and (leader != node_id or bool(replica.hasQuorum))

    def leading() -> bool:
        return replica.leader_id == node_id

    return StoreWriter(db.database_url(cfg), chain, cfg.markets, node_id=node_id,
                       healthy=None if replica is None else healthy,
                       leading=None if replica is None or len(cfg.nodes) < 2 else leading)
