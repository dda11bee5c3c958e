"""The local process manager: every node of a ClusterConfig as its own OS process.

A node is `python -m dex.cli node --config <abs path> --id <id>`, started in
its own session (so Ctrl-C in the starting terminal does not reach it), with
its log in `<data_dir>/<id>/node.log` (rotated by the node; stdout and stderr in node.out) and its pid in
`<data_dir>/<id>/node.pid`.

Invariants:
- A pid file alone never means "running": the pid must be alive and its
  /proc/<pid>/cmdline must be this node's command line (dex.cli, this config,
  this id). A stale pid file whose pid the kernel has reused for some other
  process reads as "not running", and nothing is ever signalled through it.
- Waiting is always `wait_for(predicate, timeout)`: bounded, and the timeout
  names what was awaited. No bare sleeps.
- The cluster secret is written once (0600) and never printed or logged.

Linux only: liveness is read from /proc.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from dex.config import ClusterConfig, NodeConfig

T = TypeVar("T")

SECRET_BYTES = 32  # token_urlsafe(32) gives 43 characters, above SECRET_BYTES_MIN
HTTP_TIMEOUT_S = 0.5
POLL_INTERVAL_S = 0.1
UP_TIMEOUT_S_DEFAULT = 30.0
STOP_TIMEOUT_S_DEFAULT = 10.0
KILL_TIMEOUT_S = 5.0  # SIGKILL cannot be ignored; this only bounds the wait for the kernel
LOG_TAIL_LINES = 25
LOG_TAIL_BYTES_MAX = 16 * 1024
WAIT_TIMEOUT_S_MAX = 3600.0
assert HTTP_TIMEOUT_S < UP_TIMEOUT_S_DEFAULT
assert KILL_TIMEOUT_S <= STOP_TIMEOUT_S_DEFAULT

HEALTH_PATH = "/healthz"
STATUS_PATH = "/api/v1/cluster/status"
LOG_FILE = "node.log"
OUT_FILE = "node.out"
PID_FILE = "node.pid"
START_MARKER = "--- dex cluster:"  # start_node writes it before each run


# Ports for throwaway clusters (tests, dex chaos): below the kernel's
# ephemeral range, so no outgoing connection can hold one, and never the
# development cluster's (configs/local-4.toml).
PORT_MIN = 20_000
PORT_MAX = 30_000
PORT_PICKS_MAX = 200
RESERVED_PORTS = frozenset(range(7101, 7105)) | frozenset(range(8101, 8105))
assert PORT_MAX < 32768  # /proc/sys/net/ipv4/ip_local_port_range starts there
assert not any(PORT_MIN <= p < PORT_MAX for p in RESERVED_PORTS)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


PORT_RANGE_ENV = "DEX_PORT_RANGE"  # "LO-HI": narrow PORT_MIN..PORT_MAX (processes side by side)


def port_range() -> tuple[int, int]:
    """The throwaway ports' range: PORT_MIN..PORT_MAX, or the part of it that
    $DEX_PORT_RANGE names. Processes that pick ports at the same time (the
    test suite's workers, and what they start) each get a range of their
    own: a port found free is then not taken by another before it is bound."""
    spec = os.environ.get(PORT_RANGE_ENV, "")
    if not spec:
        return PORT_MIN, PORT_MAX
    lo, sep, hi = spec.partition("-")
    if not (sep and lo.isascii() and lo.isdigit() and hi.isascii() and hi.isdigit() and PORT_MIN <= int(lo) < int(hi) <= PORT_MAX):
        raise ClusterError(f"{PORT_RANGE_ENV}={spec!r}: expected LO-HI within {PORT_MIN}-{PORT_MAX}")
    return int(lo), int(hi)


def port_slice(index: int, count: int) -> str:
    """The $DEX_PORT_RANGE value for the index-th of `count` processes
    picking ports side by side: equal slices of PORT_MIN..PORT_MAX, disjoint."""
    assert 0 <= index < count
    width = (PORT_MAX - PORT_MIN) // count
    return f"{PORT_MIN + index * width}-{PORT_MIN + (index + 1) * width}"


def free_ports(count: int, rng: random.Random) -> list[int]:
    """`count` distinct loopback ports that are free now, from port_range()."""
    lo, hi = port_range()
    ports: list[int] = []
    for _ in range(PORT_PICKS_MAX):
        port = rng.randrange(lo, hi)
        if port in ports or not port_is_free(port):
            continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise ClusterError(f"found only {len(ports)} free ports of {count} in {PORT_PICKS_MAX} picks")


class ClusterError(RuntimeError):
    """An expected failure of a cluster operation (already running, secret exists, ...)."""


class ClusterTimeout(ClusterError, TimeoutError):
    """A bounded wait ran out; the message says what was awaited."""


# --- waiting ---------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.05,
    what: str = "a condition",
) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Raises ClusterTimeout (a TimeoutError) naming `what` after `timeout_s`.
    Exceptions from the predicate propagate: a predicate can fail fast.
    """
    assert 0 <= timeout_s <= WAIT_TIMEOUT_S_MAX, timeout_s
    assert 0 < interval_s <= max(timeout_s, interval_s), interval_s
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise ClusterTimeout(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(min(interval_s, remaining_s))


# --- the secret ------------------------------------------------------------


def init(cfg: ClusterConfig, *, force: bool = False) -> Path:
    """Write a fresh cluster secret to cfg.secret_file (mode 0600); return its path."""
    path = cfg.secret_file
    if path.exists() and not force:
        raise ClusterError(f"{path} already exists; pass --force to replace it (every node must then restart)")
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # O_EXCL with mode 0600: the secret is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.replace(tmp, path)
    assert path.stat().st_mode & 0o077 == 0
    return path


# --- processes -------------------------------------------------------------


def log_path(cfg: ClusterConfig, node_id: str) -> Path:
    return cfg.node_data_dir(node_id) / LOG_FILE


def out_path(cfg: ClusterConfig, node_id: str) -> Path:
    return cfg.node_data_dir(node_id) / OUT_FILE


def pid_path(cfg: ClusterConfig, node_id: str) -> Path:
    return cfg.node_data_dir(node_id) / PID_FILE


def node_command(cfg: ClusterConfig, node_id: str, *, rebuild: bool = False) -> list[str]:
    """`rebuild`: start with --rebuild (move damaged ledger files aside, catch up from the cluster)."""
    command = [sys.executable, "-m", "dex.cli", "node", "--config", str(cfg.path), "--id", node_id, "--log-file", str(log_path(cfg, node_id))]
    return command + ["--rebuild"] if rebuild else command


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None if it is gone.

    A zombie's cmdline is empty, so a node that exited but is not yet reaped
    reads as gone; subprocess reaps the children start_node dropped.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0")]
    if args and args[-1] == "":
        args.pop()
    return args or None


def _has_pair(args: list[str], flag: str, value: str) -> bool:
    return any(args[i] == flag and args[i + 1] == value for i in range(len(args) - 1))


def _is_node_process(args: list[str], cfg: ClusterConfig, node_id: str) -> bool:
    return "dex.cli" in args and _has_pair(args, "--id", node_id) and _has_pair(args, "--config", str(cfg.path))


def node_pid(cfg: ClusterConfig, node_id: str) -> int | None:
    """The pid of this node's process if it is alive, else None (a stale pid file reads as None)."""
    cfg.node(node_id)  # raises ConfigError for an unknown id
    try:
        pid = int(pid_path(cfg, node_id).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid <= 0:
        return None
    args = _cmdline(pid)
    if args is None or not _is_node_process(args, cfg, node_id):
        return None
    return pid


def start_node(cfg: ClusterConfig, node_id: str, *, rebuild: bool = False) -> int:
    """Spawn the node detached from the terminal (with --rebuild if asked); return its pid."""
    cfg.node(node_id)
    running = node_pid(cfg, node_id)
    if running is not None:
        raise ClusterError(f"node {node_id} is already running (pid {running})")
    data_dir = cfg.node_data_dir(node_id)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path(cfg, node_id), "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{START_MARKER} {stamp} starting node {node_id} ---\n".encode())
    # The node logs into node.log itself, rotating it (dex.node.LOG_BYTES_MAX);
    # node.out keeps only what bypasses logging (a crash's traceback).
    with open(out_path(cfg, node_id), "ab") as out:
        proc = subprocess.Popen(
            node_command(cfg, node_id, rebuild=rebuild),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    tmp = pid_path(cfg, node_id).with_suffix(".pid.tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_path(cfg, node_id))
    assert proc.pid > 0
    return proc.pid


def _signal(pid: int, sig: int) -> None:
    # The node leads its own session and process group: signal the group so
    # anything it spawned goes too. Fall back to the pid if it is not a leader.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(cfg: ClusterConfig, node_ids: list[str], timeout_s: float) -> None:
    wait_for(
        lambda: all(node_pid(cfg, n) is None for n in node_ids),
        timeout_s,
        what=f"node(s) {', '.join(node_ids)} to exit",
    )


def kill_node(cfg: ClusterConfig, node_id: str, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` to the node; return False if it was not running. SIGKILL waits for the exit."""
    pid = node_pid(cfg, node_id)
    if pid is None:
        return False
    _signal(pid, sig)
    if sig == signal.SIGKILL:
        _wait_gone(cfg, [node_id], KILL_TIMEOUT_S)
    return True


def stop_nodes(cfg: ClusterConfig, node_ids: list[str], *, timeout_s: float = STOP_TIMEOUT_S_DEFAULT) -> list[str]:
    """SIGTERM the running ones, wait up to timeout_s, SIGKILL any left; return those that were running."""
    running = {n: pid for n in node_ids if (pid := node_pid(cfg, n)) is not None}
    for pid in running.values():
        _signal(pid, signal.SIGTERM)
    try:
        _wait_gone(cfg, list(running), timeout_s)
    except TimeoutError:
        for n in running:
            kill_node(cfg, n, signal.SIGKILL)
    for n in running:
        pid_path(cfg, n).unlink(missing_ok=True)
    assert all(node_pid(cfg, n) is None for n in node_ids)
    return list(running)


def stop_node(cfg: ClusterConfig, node_id: str, *, timeout_s: float = STOP_TIMEOUT_S_DEFAULT) -> bool:
    """SIGTERM, wait, then SIGKILL; return False if it was not running."""
    cfg.node(node_id)
    return bool(stop_nodes(cfg, [node_id], timeout_s=timeout_s))


def restart_node(cfg: ClusterConfig, node_id: str, *, timeout_s: float = STOP_TIMEOUT_S_DEFAULT) -> int:
    """Stop the node if it runs, start it again; return the new pid."""
    stop_node(cfg, node_id, timeout_s=timeout_s)
    return start_node(cfg, node_id)


def log_tail(cfg: ClusterConfig, node_id: str, lines: int = LOG_TAIL_LINES) -> str:
    path = log_path(cfg, node_id)
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES_MAX))
            data = f.read()
    except FileNotFoundError:
        return f"(no log at {path})"
    text = data.decode(errors="replace").splitlines()
    starts = [i for i, line in enumerate(text) if line.startswith(START_MARKER)]
    text = text[starts[-1] :] if starts else text  # this run only, not the ones before
    text = text[-lines:]
    return "\n".join(text) if text else f"(empty log {path})"


# --- HTTP probes -----------------------------------------------------------


def http_client() -> httpx.Client:
    # trust_env=False: a proxy from the environment must not sit between us and loopback.
    return httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False)


def probe_node(client: httpx.Client, node: NodeConfig) -> tuple[dict | None, str | None]:
    """(cluster status as this node sees it, None) or (None, why it did not answer)."""
    for path in (HEALTH_PATH, STATUS_PATH):
        url = node.api_url + path
        try:
            response = client.get(url)
        except httpx.HTTPError as e:
            return None, f"GET {url}: {type(e).__name__} {e}".rstrip()
        if response.status_code != 200:
            return None, f"GET {url}: HTTP {response.status_code}"
        try:
            body = response.json()
        except ValueError:
            return None, f"GET {url}: not JSON"
        if not isinstance(body, dict):
            return None, f"GET {url}: not a JSON object"
    return body, None


def _annotate(cluster_status: dict, pids: dict[str, int | None]) -> dict:
    cluster_status["processes"] = pids
    for entry in cluster_status.get("nodes", []):
        pid = pids.get(entry.get("id"))
        entry["pid"] = pid
        entry["alive"] = pid is not None
    return cluster_status


def status(cfg: ClusterConfig, *, client: httpx.Client | None = None) -> dict:
    """The cluster status JSON from the first node that answers, plus each node's pid.

    Adds "processes": {id: pid or None} and, in every "nodes" entry, "pid" and
    "alive" (is the local process running). When no node answers, "node" is
    None and "nodes" lists the configured nodes as unreachable, with
    "errors": {id: why}.
    """
    pids = {n.id: node_pid(cfg, n.id) for n in cfg.nodes}
    errors: dict[str, str] = {}
    own = client is None
    client = client or http_client()
    try:
        for n in cfg.nodes:
            body, error = probe_node(client, n)
            if body is not None:
                return _annotate(body, pids)
            errors[n.id] = error or "no answer"
    finally:
        if own:
            client.close()
    down = {
        "node": None,
        "leader": None,
        "hasQuorum": False,
        "term": None,
        "nodes": [{"id": n.id, "role": "unreachable", "reachable": False, "apiUrl": n.api_url} for n in cfg.nodes],
        "errors": errors,
    }
    return _annotate(down, pids)


# --- the whole cluster -----------------------------------------------------


def up(cfg: ClusterConfig, *, timeout_s: float = UP_TIMEOUT_S_DEFAULT) -> dict:
    """Start every node that is not running; wait for one leader every node agrees on.

    Returns status(cfg). Raises ConfigError if there is no secret, ClusterError
    at once if a node we started exits, ClusterTimeout with each failing
    node's log tail if the cluster is not up within timeout_s.
    """
    cfg.secret()  # fail here, with its message, rather than in every node's log
    started = {}
    for n in cfg.nodes:
        if node_pid(cfg, n.id) is None:
            started[n.id] = start_node(cfg, n.id)
    problems: dict[str, str] = {}

    with http_client() as client:

        def ready() -> bool:
            problems.clear()
            for n_id in started:
                if node_pid(cfg, n_id) is None:
                    raise ClusterError(
                        f"node {n_id} exited during start-up\n"
                        f"--- {log_path(cfg, n_id)} (tail) ---\n{log_tail(cfg, n_id)}"
                    )
            leaders = {}
            for n in cfg.nodes:
                body, error = probe_node(client, n)
                if body is None:
                    problems[n.id] = error or "no answer"
                    continue
                leaders[n.id] = body.get("leader")
                if not body.get("hasQuorum") or body.get("leader") is None:
                    problems[n.id] = f"no leader yet (term {body.get('term')}, quorum {body.get('hasQuorum')})"
            if not problems and len(set(leaders.values())) > 1:
                for n_id, leader in leaders.items():
                    problems[n_id] = f"sees leader {leader}"
            return not problems

        try:
            wait_for(ready, timeout_s, interval_s=POLL_INTERVAL_S, what=f"cluster {cfg.name} to elect a leader")
        except ClusterTimeout as e:
            raise ClusterTimeout(_up_failure(cfg, str(e), problems)) from None
        return status(cfg, client=client)


def _up_failure(cfg: ClusterConfig, headline: str, problems: dict[str, str]) -> str:
    lines = [headline + ":"]
    for n in cfg.nodes:
        pid = node_pid(cfg, n.id)
        lines.append(f"  {n.id} (pid {pid if pid is not None else 'none'}): {problems.get(n.id, 'ok')}")
    for n_id in problems:
        lines.append(f"--- {log_path(cfg, n_id)} (tail) ---")
        lines.append(log_tail(cfg, n_id))
    return "\n".join(lines)


def down(cfg: ClusterConfig, *, timeout_s: float = STOP_TIMEOUT_S_DEFAULT) -> list[str]:
    """Stop every node (SIGTERM all, then SIGKILL stragglers); return those that were running."""
    return stop_nodes(cfg, [n.id for n in cfg.nodes], timeout_s=timeout_s)


def summary(cluster_status: dict) -> dict[str, Any]:
    """The parts of a status that matter to a watcher, for change detection."""
    return {
        "leader": cluster_status.get("leader"),
        "term": cluster_status.get("term"),
        "quorum": cluster_status.get("hasQuorum"),
        "nodes": {
            e.get("id"): (e.get("role"), e.get("alive"), e.get("headHeight"), e.get("headHash"))
            for e in cluster_status.get("nodes", [])
        },
    }


def hash_agreement(cluster_status: dict) -> tuple[bool, str]:
    """Do nodes at the same head height report the same head and state hashes?"""
    by_height: dict[int, list[dict]] = {}
    for e in cluster_status.get("nodes", []):
        if e.get("reachable") and e.get("headHeight") is not None:
            by_height.setdefault(e["headHeight"], []).append(e)
    if not by_height:
        return False, "no heads to compare"
    for height, entries in sorted(by_height.items()):
        heads = {e.get("headHash") for e in entries}
        states = {e.get("stateHash") for e in entries}
        if len(heads) > 1 or len(states) > 1:
            ids = ", ".join(e["id"] for e in entries)
            return False, f"hashes DISAGREE at height {height} ({ids})"
    top = max(by_height)
    return True, f"hashes agree ({len(by_height[top])} node(s) at height {top})"


def wait_node_ready(cfg: ClusterConfig, node_id: str, *, timeout_s: float = UP_TIMEOUT_S_DEFAULT) -> dict:
    """Wait until this node answers /healthz and /api/v1/cluster/status; return its status."""
    node = cfg.node(node_id)
    with http_client() as client:

        def answered() -> dict | None:
            if node_pid(cfg, node_id) is None:
                raise ClusterError(
                    f"node {node_id} is not running\n--- {log_path(cfg, node_id)} (tail) ---\n{log_tail(cfg, node_id)}"
                )
            return probe_node(client, node)[0]

        return wait_for(answered, timeout_s, interval_s=POLL_INTERVAL_S, what=f"node {node_id} to answer at {node.api_url}")
