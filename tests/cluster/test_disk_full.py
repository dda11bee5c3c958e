"""A node whose data directory fills up stops with one clear line, and
catches up once there is room again (a real node on a small tmpfs).

PySyncObj's journal is an mmap: a write into a page the disk cannot back
kills the process with SIGBUS and no log line. The replica checks the free
space before each journal entry and stops itself first (EXIT_DISK_FULL),
before its engine or chain is touched; a restart recovers from its own data
and the leader's log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from cluster import local
from dex.ledger.replica import DISK_FREE_BYTES_MIN, EXIT_APPLY_FAILED, EXIT_DISK_FULL
from tests.cluster.harness import Cluster
from tests.cluster.test_recovery import place_orders

TMPFS_BYTES = 64 * 1024 * 1024
SLACK_BYTES = 96 * 1024  # free space left above the reserve: a few dozen blocks
ORDERS_PER_STEP = 10
STOP_TIMEOUT_S = 90.0
MOUNT_TIMEOUT_S = 10.0
VICTIM = "n4"
assert DISK_FREE_BYTES_MIN + SLACK_BYTES < TMPFS_BYTES // 4


def _mount_tmpfs(path) -> str | None:
    """Mount a small tmpfs at path; the reason if that is not permitted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root and mount(8)"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(path)], capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S)
    return None if r.returncode == 0 else f"mount -t tmpfs is not permitted here: {r.stderr.strip()}"


def _free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_node_whose_disk_fills_stops_once_with_a_clear_line_and_catches_up_when_space_returns(cluster_config: Cluster) -> None:
    cluster = cluster_config
    data_dir = cluster.cfg.node_data_dir(VICTIM)
    data_dir.mkdir(parents=True, exist_ok=True)
    reason = _mount_tmpfs(data_dir)
    if reason is not None:
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    try:
        cluster.up()
        others = [n for n in cluster.ids if n != VICTIM]
        first = place_orders(cluster, [cluster.url(n) for n in others], ORDERS_PER_STEP, "before")
        cluster.wait_converged(cluster.ids, height_min=first)

        filler = data_dir / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, _free_bytes(data_dir) - DISK_FREE_BYTES_MIN - SLACK_BYTES)
        finally:
            os.close(fd)
        steps = iter(range(10_000))
        local.wait_for(
            lambda: local.node_pid(cluster.cfg, VICTIM) is None or not place_orders(cluster, [cluster.url(n) for n in others], ORDERS_PER_STEP, f"fill{next(steps)}"),
            STOP_TIMEOUT_S, interval_s=0.01, what=f"{VICTIM} to stop on a full disk",
        )
        text = local.log_path(cluster.cfg, VICTIM).read_text(errors="replace")
        critical = [line for line in text.splitlines() if " CRITICAL " in line]
        assert len(critical) == 1, critical
        assert "stopping:" in critical[0] and (f"[exit {EXIT_DISK_FULL}]" in critical[0] or f"[exit {EXIT_APPLY_FAILED}]" in critical[0]), critical
        assert "Bus error" not in text and "Fatal Python error" not in text

        filler.unlink()  # space returns
        last = place_orders(cluster, [cluster.url(n) for n in others], ORDERS_PER_STEP, "after")
        cluster.start(VICTIM)

        head = cluster.wait_converged(cluster.ids, height_min=last)
        leader = cluster.wait_leader()
        assert cluster.headers(VICTIM, head.height) == cluster.headers(leader, head.height)
    finally:
        cluster.close()
        log = local.log_path(cluster.cfg, VICTIM)
        if log.exists():  # keep it for the fixture's log scan once the tmpfs is gone
            cluster.archive_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, cluster.archive_dir / f"{VICTIM}.{time.monotonic_ns()}.node.log")
        subprocess.run(["umount", "-l", str(data_dir)], capture_output=True, timeout=MOUNT_TIMEOUT_S)
