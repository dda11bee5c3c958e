"""PostgreSQL for the store tests: a fresh database per test on the shared
server, and a private throwaway server for the outage test.

The shared server is 127.0.0.1:5432 (trust auth, user postgres, database
`test`); a test that needs it and finds none skips with a loud reason. Each
test gets its own `dex_test_<random>` database, dropped at the end, so tests
never see each other's rows. `PrivatePostgres` runs initdb/pg_ctl (as the
postgres user when we are root: initdb refuses root) in a temporary
directory on a free port; stopping and starting it is the outage.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432
ADMIN_DB = "test"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_CTL_TIMEOUT_S = 60


def _admin_connect(host: str, port: int, dbname: str):
    import psycopg2

    conn = psycopg2.connect(host=host, port=port, user="postgres", dbname=dbname, connect_timeout=3)
    conn.autocommit = True
    return conn


def shared_server_or_skip() -> None:
    try:
        _admin_connect(SHARED_HOST, SHARED_PORT, ADMIN_DB).close()
    except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
        pytest.skip(f"*** NO POSTGRESQL on {SHARED_HOST}:{SHARED_PORT} (database {ADMIN_DB}, user postgres): {e} ***")


class FreshDatabase:
    """CREATE DATABASE dex_test_<random> on a server; drop() removes it."""

    def __init__(self, host: str = SHARED_HOST, port: int = SHARED_PORT, admin_db: str = ADMIN_DB) -> None:
        self.host, self.port, self.admin_db = host, port, admin_db
        self.name = f"dex_test_{secrets.token_hex(6)}"
        conn = _admin_connect(host, port, admin_db)
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            conn.close()
        self.url = f"postgresql+psycopg2://postgres@{host}:{port}/{self.name}"

    def drop(self) -> None:
        conn = _admin_connect(self.host, self.port, self.admin_db)
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A throwaway PostgreSQL server of our own: start, stop (the outage), start."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"*** NO {PG_BIN}/initdb: cannot run a private PostgreSQL for the outage test ***")
        self.dir = Path(tempfile.mkdtemp(prefix="dex-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"])

    def _run(self, argv: list[str]) -> None:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, cwd=self.dir)
        assert r.returncode == 0, f"{' '.join(argv)}: {r.returncode}\n{r.stdout}\n{r.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options, "-w", "-t", str(PG_CTL_TIMEOUT_S), "start"])

    def stop(self) -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", str(PG_CTL_TIMEOUT_S), "stop"])

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
