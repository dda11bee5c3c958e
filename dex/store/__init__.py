"""The trade store: every committed block's trades and orders in SQL.

models.py   the tables (SQLAlchemy 2 typed models); migrations/ (Alembic)
db.py       engines for PostgreSQL and SQLite, the default URL, `migrate`
rows.py     blocks to rows, no database
writer.py   StoreWriter: the exactly-once writer thread each node runs
check.py    compare_store: the store against a node's chain, for audits
See docs/STORE.md.
"""
