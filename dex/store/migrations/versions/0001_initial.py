"""The first schema: blocks, trades, orders and the write cursor at height 0.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from dex.store.models import Amount

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "blocks",
        sa.Column("height", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("parent", HASH, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("leader", sa.String(255), nullable=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("commands_count", sa.Integer, nullable=False),
        sa.Column("trades_count", sa.Integer, nullable=False),
        sa.Column("state_hash", HASH, nullable=False),
        sa.Column("written_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("height", name="pk_blocks"),
        sa.UniqueConstraint("hash", name="uq_blocks_hash"),
    )
    op.create_index("ix_blocks_time_ms", "blocks", ["time_ms"])
    op.create_table(
        "trades",
        sa.Column("trade_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("height", sa.BigInteger, nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("price_ticks", sa.BigInteger, nullable=False),
        sa.Column("qty_lots", sa.BigInteger, nullable=False),
        sa.Column("price", Amount(), nullable=False),
        sa.Column("qty", Amount(), nullable=False),
        sa.Column("taker_side", sa.String(4), nullable=False),
        sa.Column("maker_order_id", sa.BigInteger, nullable=False),
        sa.Column("taker_order_id", sa.BigInteger, nullable=False),
        sa.Column("maker_account", sa.BigInteger, nullable=False),
        sa.Column("taker_account", sa.BigInteger, nullable=False),
        sa.Column("maker_fee_units", sa.BigInteger, nullable=False),
        sa.Column("taker_fee_units", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("trade_id", name="pk_trades"),
    )
    op.create_index("ix_trades_symbol_time_ms", "trades", ["symbol", "time_ms"])
    op.create_index("ix_trades_maker_account_time_ms", "trades", ["maker_account", "time_ms"])
    op.create_index("ix_trades_taker_account_time_ms", "trades", ["taker_account", "time_ms"])
    op.create_index("ix_trades_height", "trades", ["height"])
    op.create_table(
        "orders",
        sa.Column("order_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("account", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("tif", sa.String(4), nullable=False),
        sa.Column("price_ticks", sa.BigInteger, nullable=False),
        sa.Column("qty_lots", sa.BigInteger, nullable=False),
        sa.Column("quote_qty_units", sa.BigInteger, nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filled_lots", sa.BigInteger, nullable=False),
        sa.Column("height", sa.BigInteger, nullable=False),
        sa.Column("updated_height", sa.BigInteger, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_account_time_ms", "orders", ["account", "time_ms"])
    op.create_index("ix_orders_symbol_time_ms", "orders", ["symbol", "time_ms"])
    op.create_index("ix_orders_height", "orders", ["height"])
    cursor = op.create_table(
        "store_cursor",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("height", sa.BigInteger, nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_cursor"),
    )
    op.bulk_insert(cursor, [{"id": 1, "height": 0, "block_hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table("store_cursor")
    op.drop_table("orders")
    op.drop_table("trades")
    op.drop_table("blocks")
