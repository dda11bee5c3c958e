"""The local process manager's own logic, without a real node.

What is tested here is bookkeeping: the secret file, pid files and the
/proc check that keeps a stale pid from being taken for a node, the bounded
wait, and the CLI's answers when nothing is running. The cluster itself is
tested against real node processes elsewhere; the stand-in process below
only has a node's command line, so the manager can find, stop and kill it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import local
from dex import cli
from dex.config import SECRET_ENV, ClusterConfig, ConfigError, load_cluster

REPO = Path(__file__).resolve().parents[2]
NODE_IDS = ("n1", "n2", "n3")
STANDIN_LIFETIME_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    shutil.copy(REPO / "configs" / "markets.toml", tmp_path / "markets.toml")
    lines = [
        "[cluster]",
        'name = "test-local"',
        'markets = "markets.toml"',
        'data_dir = "var"',
        'secret_file = "var/cluster.secret"',
    ]
    for node_id in NODE_IDS:
        lines += ["", "[[nodes]]", f'id = "{node_id}"', f'raft = "127.0.0.1:{free_port()}"', f'api = "127.0.0.1:{free_port()}"']
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def cfg(config_path: Path) -> ClusterConfig:
    return load_cluster(config_path)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    return subprocess.run(
        [sys.executable, "-m", "dex.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


# --- the secret ------------------------------------------------------------


def test_init_writes_a_private_secret_and_refuses_to_overwrite(cfg: ClusterConfig) -> None:
    path = local.init(cfg)

    assert path == cfg.secret_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = cfg.secret()
    assert len(first) >= 32
    with pytest.raises(local.ClusterError, match="already exists"):
        local.init(cfg)
    assert cfg.secret() == first

    local.init(cfg, force=True)
    assert cfg.secret() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_init_never_prints_the_secret(config_path: Path, tmp_path: Path) -> None:
    result = run_cli("cluster", "init", "--config", str(config_path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    secret = load_cluster(config_path).secret()
    assert secret not in result.stdout + result.stderr
    again = run_cli("cluster", "init", "--config", str(config_path), cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert load_cluster(config_path).secret() == secret


# --- pid files -------------------------------------------------------------


def test_node_pid_ignores_a_stale_pid_file_with_a_reused_pid(cfg: ClusterConfig) -> None:
    cfg.node_data_dir("n1").mkdir(parents=True)
    local.pid_path(cfg, "n1").write_text(f"{os.getpid()}\n")  # alive, but pytest is no node

    assert local.node_pid(cfg, "n1") is None
    assert local.kill_node(cfg, "n1") is False  # and nothing was signalled through it
    assert local.stop_node(cfg, "n1") is False


def test_node_pid_ignores_garbage_and_dead_pids(cfg: ClusterConfig) -> None:
    cfg.node_data_dir("n2").mkdir(parents=True)
    assert local.node_pid(cfg, "n2") is None  # no pid file
    local.pid_path(cfg, "n2").write_text("not a pid\n")
    assert local.node_pid(cfg, "n2") is None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    local.pid_path(cfg, "n2").write_text(done.stdout)
    assert local.node_pid(cfg, "n2") is None


def test_node_pid_rejects_unknown_node(cfg: ClusterConfig) -> None:
    with pytest.raises(ConfigError, match="no node 'n9'"):
        local.node_pid(cfg, "n9")


def standin(cfg: ClusterConfig, node_id: str) -> subprocess.Popen:
    """A process whose command line is node_id's, that only sleeps: a target for the manager."""
    argv = [sys.executable, "-c", f"import time; time.sleep({STANDIN_LIFETIME_S})"]
    argv += local.node_command(cfg, node_id)[1:]
    proc = subprocess.Popen(argv, start_new_session=True)
    cfg.node_data_dir(node_id).mkdir(parents=True, exist_ok=True)
    local.pid_path(cfg, node_id).write_text(f"{proc.pid}\n")
    local.wait_for(lambda: local.node_pid(cfg, node_id) == proc.pid, 5, what="the stand-in's cmdline")
    return proc


def test_manager_finds_refuses_and_stops_a_running_node_process(cfg: ClusterConfig) -> None:
    proc = standin(cfg, "n1")
    try:
        assert local.node_pid(cfg, "n2") is None  # same command, other id: not n2
        with pytest.raises(local.ClusterError, match="already running"):
            local.start_node(cfg, "n1")

        assert local.stop_node(cfg, "n1", timeout_s=5) is True

        assert proc.wait(timeout=5) == -signal.SIGTERM
        assert local.node_pid(cfg, "n1") is None
        assert not local.pid_path(cfg, "n1").exists()
    finally:
        proc.kill()


def test_kill_node_sends_sigkill_and_waits(cfg: ClusterConfig) -> None:
    proc = standin(cfg, "n3")
    try:
        assert local.kill_node(cfg, "n3") is True
        assert local.node_pid(cfg, "n3") is None
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()


# --- waiting ---------------------------------------------------------------


def test_wait_for_raises_timeout_naming_what() -> None:
    with pytest.raises(TimeoutError, match="waiting for the moon to turn blue"):
        local.wait_for(lambda: False, 0.2, what="the moon to turn blue")


def test_wait_for_returns_the_first_truthy_value() -> None:
    calls = iter([None, 0, "", {"leader": "n2"}])
    assert local.wait_for(lambda: next(calls), 5, interval_s=0.01, what="a leader") == {"leader": "n2"}


# --- status ----------------------------------------------------------------


def test_status_with_every_node_down(cfg: ClusterConfig) -> None:
    st = local.status(cfg)

    assert st["node"] is None
    assert st["processes"] == {n: None for n in NODE_IDS}
    assert [e["id"] for e in st["nodes"]] == list(NODE_IDS)
    assert all(not e["reachable"] and not e["alive"] for e in st["nodes"])
    assert set(st["errors"]) == set(NODE_IDS)


def test_cli_status_reports_nodes_down_and_fails(config_path: Path, tmp_path: Path) -> None:
    result = run_cli("cluster", "status", "--config", str(config_path), cwd=tmp_path)

    assert result.returncode == 1
    assert "all nodes are down" in result.stdout
    for node_id in NODE_IDS:
        assert node_id in result.stdout
    assert "Traceback" not in result.stderr


def test_cli_up_without_a_secret_fails_before_starting_anything(config_path: Path, tmp_path: Path) -> None:
    result = run_cli("cluster", "up", "--detach", "--config", str(config_path), cwd=tmp_path)

    assert result.returncode == 2
    assert "no cluster secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / "var").glob("*/node.pid"))


def test_cli_reports_a_missing_config_in_one_line(tmp_path: Path) -> None:
    result = run_cli("cluster", "status", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no such config file" in result.stderr


def test_default_config_is_local_then_the_repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.default_config_path() == REPO / "configs" / "local-4.toml"

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "local-4.toml").write_text("")
    assert cli.default_config_path().resolve() == tmp_path / "configs" / "local-4.toml"


def test_hash_agreement_compares_nodes_at_the_same_height() -> None:
    def node(node_id: str, height: int, head: str, state: str) -> dict:
        return {"id": node_id, "reachable": True, "headHeight": height, "headHash": head, "stateHash": state}

    agree, why = local.hash_agreement({"nodes": [node("n1", 5, "a", "s"), node("n2", 5, "a", "s"), node("n3", 4, "b", "t")]})
    assert agree, why
    agree, why = local.hash_agreement({"nodes": [node("n1", 5, "a", "s"), node("n2", 5, "a", "x")]})
    assert not agree
    assert "height 5" in why


def test_log_tail_shows_only_the_latest_run(cfg: ClusterConfig) -> None:
    cfg.node_data_dir("n1").mkdir(parents=True)
    local.log_path(cfg, "n1").write_text(
        f"{local.START_MARKER} 1 starting node n1 ---\nold failure\n{local.START_MARKER} 2 starting node n1 ---\nnew failure\n"
    )

    tail = local.log_tail(cfg, "n1")

    assert "new failure" in tail
    assert "old failure" not in tail


def test_the_status_table_shows_store_lag_and_engine():
    from dex.cli import _status_table

    st = {"nodes": [
        {"id": "n1", "alive": True, "role": "leader", "term": 2, "headHeight": 9, "reachable": True, "engine": "compiled",
         "store": {"enabled": True, "up": True, "lagBlocks": 3, "lagS": 0.25}},
        {"id": "n2", "alive": True, "role": "follower", "term": 2, "headHeight": 9, "reachable": True, "engine": "pure",
         "store": {"enabled": True, "up": False}},
        {"id": "n3", "alive": False, "reachable": False, "store": {"enabled": False}},
    ]}

    header, n1, n2, n3 = _status_table(st)

    assert "store lag" in header and "engine" in header
    assert "3 blk 0.25 s" in n1 and "compiled" in n1
    assert "DOWN" in n2 and "pure" in n2
    assert " off " in n3
