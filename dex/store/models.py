"""The trade store's tables: blocks, trades, orders and the write cursor.

Money is never a float. Every amount is kept as the engine's integers (ticks,
lots, asset units) in BIGINT columns, which are the authoritative values; the
decimal `price` and `qty` of a trade are there for analysts, as NUMERIC on
PostgreSQL and as exact decimal TEXT on SQLite (whose NUMERIC affinity would
turn them into binary floats).

Ids and accounts are BIGINT. Order and trade ids count up from 1 and account
ids are the first 63 bits of a key's hash (dex.auth), so they fit; the ledger
allows u64 accounts, and one at or above 2**63 (never made through the API) is
stored as its two's-complement signed value (`signed64`).

`store_cursor` has one row (id 1): the height and hash of the last block
whose rows are in the store. It is updated in the same transaction as the
rows (see dex.store.writer for why that makes writing exactly-once).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, Index, Integer, MetaData, String, TypeDecorator
from sqlalchemy import Numeric as _Numeric
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

HASH_HEX_CHARS = 64
SYMBOL_CHARS_MAX = 32
NAME_CHARS_MAX = 255  # a node id, as the codec allows (u8 length)
CLIENT_ORDER_ID_CHARS_MAX = 64
DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18
CURSOR_ID = 1
INT64_MAX = 2**63 - 1
assert DECIMAL_SCALE < DECIMAL_PRECISION


def signed64(value: int) -> int:
    """A u64 as the BIGINT that holds it (identity below 2**63)."""
    assert 0 <= value < 2**64, value
    return value if value <= INT64_MAX else value - 2**64


def amount_text(value) -> str:
    """An exact decimal as SQLite stores it: its text (the store writer's
    rows go to SQLite's driver already in this form)."""
    return str(Decimal(value))


class Amount(TypeDecorator):
    """An exact decimal: NUMERIC(38, 18) on PostgreSQL, decimal text on SQLite."""

    impl = _Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(DECIMAL_PRECISION + 2))
        return dialect.type_descriptor(_Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return amount_text(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(value)


# Constraint names fixed here so migrations name them the same on every database.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})


class Base(DeclarativeBase):
    metadata = metadata


class Block(Base):
    """One committed block, as every node's chain holds it."""

    __tablename__ = "blocks"

    height: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS), unique=True)
    parent: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
    time_ms: Mapped[int] = mapped_column(BigInteger)
    leader: Mapped[str] = mapped_column(String(NAME_CHARS_MAX))
    term: Mapped[int] = mapped_column(BigInteger)
    commands_count: Mapped[int] = mapped_column(Integer)
    trades_count: Mapped[int] = mapped_column(Integer)
    state_hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
    # The writer's wall clock when it wrote the block, just before its commit:
    # written_ms - time_ms is how far the store lagged behind that block.
    # Not part of the ledger (compare_store ignores it).
    written_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "time_ms"),)


class TradeRow(Base):
    """One trade. Fees are in units of the asset each side receives."""

    __tablename__ = "trades"

    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    height: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
    time_ms: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_CHARS_MAX))
    price_ticks: Mapped[int] = mapped_column(BigInteger)
    qty_lots: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[Decimal] = mapped_column(Amount)
    qty: Mapped[Decimal] = mapped_column(Amount)
    taker_side: Mapped[str] = mapped_column(String(4))
    maker_order_id: Mapped[int] = mapped_column(BigInteger)
    taker_order_id: Mapped[int] = mapped_column(BigInteger)
    maker_account: Mapped[int] = mapped_column(BigInteger)
    taker_account: Mapped[int] = mapped_column(BigInteger)
    maker_fee_units: Mapped[int] = mapped_column(BigInteger)
    taker_fee_units: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "symbol", "time_ms"),
        Index(None, "maker_account", "time_ms"),
        Index(None, "taker_account", "time_ms"),
        Index(None, "height"),
    )


class OrderRow(Base):
    """One order and where it ended (or stands): upserted as blocks arrive."""

    __tablename__ = "orders"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_CHARS_MAX))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    tif: Mapped[str] = mapped_column(String(4))
    price_ticks: Mapped[int] = mapped_column(BigInteger)  # 0 for MARKET
    qty_lots: Mapped[int] = mapped_column(BigInteger)  # after amends; 0 for a market buy by quote
    quote_qty_units: Mapped[int] = mapped_column(BigInteger)
    client_order_id: Mapped[str | None] = mapped_column(String(CLIENT_ORDER_ID_CHARS_MAX))
    status: Mapped[str] = mapped_column(String(16))
    filled_lots: Mapped[int] = mapped_column(BigInteger)
    height: Mapped[int] = mapped_column(BigInteger)  # the block that accepted it
    updated_height: Mapped[int] = mapped_column(BigInteger)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    update_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "account", "time_ms"),
        Index(None, "symbol", "time_ms"),
        Index(None, "height"),
    )


class StoreCursor(Base):
    """The last block written, committed with its rows. One row, id 1."""

    __tablename__ = "store_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    height: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH_HEX_CHARS))
