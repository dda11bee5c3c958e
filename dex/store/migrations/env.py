"""Alembic's environment for the trade store. Run from code (dex.store.db.migrate),
which passes an open connection already inside a transaction that holds the
migration lock; `alembic -c` with a sqlalchemy.url works too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from dex.store.models import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, transactional_ddl=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
