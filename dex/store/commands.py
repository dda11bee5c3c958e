"""`dex store migrate` and `dex store status`: the trade store from the shell.

SQLAlchemy is imported by the commands, not by this module: building the
CLI's parser (every `dex` command does) must not pay for it."""

from __future__ import annotations

import json
import sys


def add_commands(commands, config_parent, load) -> None:
    store = commands.add_parser("store", help="the trade store (PostgreSQL or SQLite)")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func_, text in (
        ("migrate", cmd_migrate, "create or upgrade the store's schema (nodes also do it on start)"),
        ("status", cmd_status, "the store's schema revision, cursor and row counts"),
    ):
        p = actions.add_parser(name, parents=[config_parent], help=text)
        p.add_argument("--database-url", default=None, help="the store (default: DATABASE_URL, the config's database_url, else SQLite under data_dir)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=lambda args, f=func_: f(args, load))


def _url(args, load) -> str:
    from dex.store import db

    return args.database_url or db.database_url(load(args.config))


def cmd_migrate(args, load) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from dex.store import db

    url = _url(args, load)
    engine = db.make_engine(url)
    try:
        db.migrate(engine)
        revision = db.current_revision(engine)
        if args.json:
            print(json.dumps({"database": db.redact(url), "revision": revision}))
        else:
            print(f"{db.redact(url)}: schema at revision {revision}")
    except SQLAlchemyError as e:
        print(f"dex: {db.redact(url)}: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def cmd_status(args, load) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from dex.store import db
    from dex.store.models import Block, StoreCursor, TradeRow

    url = _url(args, load)
    engine = db.make_engine(url)
    try:
        revision = db.current_revision(engine)
        out = {"database": db.redact(url), "revision": revision}
        if revision is not None:
            with db.read_only(engine) as conn:
                out["cursorHeight"] = conn.execute(select(StoreCursor.height)).scalar_one()
                out["blocks"] = conn.execute(select(func.count()).select_from(Block)).scalar_one()
                out["trades"] = conn.execute(select(func.count()).select_from(TradeRow)).scalar_one()
    except SQLAlchemyError as e:
        print(f"dex: {db.redact(url)}: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(out, indent=2))
    elif revision is None:
        print(f"store {out['database']}: no schema yet (run `dex store migrate`, or start a node)")
    else:
        print(f"store {out['database']}: schema at revision {revision}")
        print(f"  written up to block {out['cursorHeight']}: {out['blocks']} blocks, {out['trades']} trades")
    return 0
