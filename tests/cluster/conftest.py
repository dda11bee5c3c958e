"""Fixtures for the real-process cluster tests.

`cluster` is a fresh, running four-node cluster per test (its own config,
ports, data and secret under tmp_path); `cluster_config` is the same without
starting anything. Whatever the test does, teardown stops every node of it.

The log check, on every test that uses either fixture: PySyncObj logs
"truncating already-applied log entries" when a follower throws away entries
its state machine already applied; the replicas may then diverge, so the
test fails. The logs are scanned right after the test body (so the failure
is the test's own, raised as TruncatedAppliedEntries, which an xfail mark can
name) and once more after the nodes are stopped (anything written since is
an error at teardown). When a test fails, the tails of its node logs are
attached to the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dex.config import SECRET_ENV
from tests.cluster.harness import Cluster

CLUSTERS = pytest.StashKey[list[Cluster]]()


@pytest.fixture
def cluster_config(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A cluster's config and secret, no process started; always cleaned up."""
    monkeypatch.delenv(SECRET_ENV, raising=False)  # the secret comes from the file, as in production
    c = Cluster.create(tmp_path / "cluster", name=f"test-{request.node.name}"[:60])
    request.node.stash.setdefault(CLUSTERS, []).append(c)
    try:
        yield c
    finally:
        c.close()
    c.check_log()  # lines written after the test body, e.g. while stopping


@pytest.fixture
def cluster(cluster_config: Cluster) -> Cluster:
    """A running four-node cluster with a leader every node agrees on."""
    cluster_config.up()
    return cluster_config


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield  # a failing test body raises here and is reported as it is
    for c in item.stash.get(CLUSTERS, []):
        c.check_log()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        for c in item.stash.get(CLUSTERS, []):
            try:
                tails = c.log_tails()
            except Exception as e:  # the report must not fail for want of a log
                tails = f"(could not read node logs: {e!r})"
            report.sections.append((f"node logs of {c.cfg.name} ({c.cfg.path.parent})", tails))
    return report
