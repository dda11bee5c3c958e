"""Connecting to the trade store and migrating it.

`DATABASE_URL` (or `database_url` in the cluster config) selects the
database: PostgreSQL through psycopg2 (`postgresql+psycopg2://...`), or
SQLite. Without one, each cluster shares a SQLite file under its data_dir,
`<data_dir>/trades.sqlite`, so a local cluster needs no server.

SQLite is opened in WAL mode with a busy timeout, and every transaction
starts with BEGIN IMMEDIATE (pysqlite's own transaction handling is turned
off): a transaction that reads the cursor then writes holds the write lock
from its first statement, so two of them never interleave. Connections from
`read_only` begin with a plain BEGIN instead: readers never wait for the writer.

Migrations are Alembic's (dex/store/migrations), run by `migrate` in one
transaction under a lock (a PostgreSQL transaction-level advisory lock, or
SQLite's write lock), so four nodes starting at once migrate once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_FILE = "trades.sqlite"
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 3
PG_STATEMENT_TIMEOUT_MS = 60_000
# Session and transaction advisory lock keys (any constant 64-bit ints, ours alone).
WRITER_LOCK_KEY = 0x6465785354_01  # "dexST" 1: the one writer
MIGRATE_LOCK_KEY = 0x6465785354_02  # migrations
READ_ONLY = "dex_read_only"  # execution option: a SQLite transaction that only reads (plain BEGIN)
PAGE_ROWS = 1000  # rows per multi-row INSERT statement (insertmanyvalues)


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / SQLITE_FILE).as_posix()}"


def database_url(cfg) -> str:
    """The store's URL for a ClusterConfig: its database_url, else SQLite under data_dir."""
    return cfg.database_url or default_url(cfg.data_dir)


def redact(url: str) -> str:
    """The URL with any password hidden, for logs and status."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(engine_or_url) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 2) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            insertmanyvalues_page_size=PAGE_ROWS,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            # Readers (status polls, audits) take no write lock: in WAL mode they never wait for the writer.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"the trade store runs on PostgreSQL or SQLite, not {parsed.get_backend_name()!r}")
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        executemany_mode="values_plus_batch",  # UPDATE executemany through execute_batch
        insertmanyvalues_page_size=PAGE_ROWS,
        connect_args={
            "connect_timeout": PG_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
            "application_name": "dex-store",
        },
    )


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(engine: Engine, revision: str = "head", *, down: bool = False) -> None:
    """Bring the schema up (or `down`) to `revision`, once, whoever else is migrating."""
    cfg = alembic_config()
    with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite
        if not is_sqlite(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def read_only(engine: Engine):
    """A connection for reading: on SQLite its transactions take no write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with read_only(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()
