"""Fixtures for the real-process cluster tests.

`cluster` is a fresh, running four-node cluster per test (its own config,
ports, data and secret under tmp_path); `cluster_config` is the same without
starting anything. Whatever the test does, teardown stops every node of it.

Starting four nodes costs seconds, so a module whose tests only send
requests (each with its own accounts, never stopping a node) may share one
by overriding `cluster` (or `tuned_cluster`, which then takes the module's
`cluster_settings` mark):

    @pytest.fixture
    def cluster(shared_cluster: Cluster) -> Cluster:
        return shared_cluster

A test in such a module that kills, pauses or partitions a node asks for
`fresh_cluster` instead.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dex.config import SECRET_ENV
from tests.cluster.harness import Cluster

CLUSTERS = pytest.StashKey[list[Cluster]]()


@contextmanager
def cluster_lifecycle(directory: Path, name: str, settings: dict | None = None, *, start: bool = True, item: pytest.Item | None = None) -> Iterator[Cluster]:
    """The one way a fixture makes a cluster: its config under `directory`
    (the secret from its file, as in production: $DEX_CLUSTER_SECRET is
    unset meanwhile), started unless `start` is False, its log checks tied to
    `item` (a test) if given; always closed, and its logs scanned once more
    after its nodes stopped."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(SECRET_ENV, raising=False)
        c = Cluster.create(directory, name=name[:60], settings=settings)
        if item is not None:
            item.stash.setdefault(CLUSTERS, []).append(c)
        try:
            if start:
                c.up()
            yield c
        finally:
            c.close()
    c.check_log()  # lines written after the test body, e.g. while stopping


@pytest.fixture
def cluster_config(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster's config and secret, no process started; always cleaned up."""
    with cluster_lifecycle(tmp_path / "cluster", f"test-{request.node.name}", start=False, item=request.node) as c:
        yield c


@pytest.fixture
def cluster(cluster_config: Cluster) -> Cluster:
    """A running four-node cluster with a leader every node agrees on."""
    cluster_config.up()
    return cluster_config


@pytest.fixture
def fresh_cluster(cluster_config: Cluster) -> Cluster:
    """A running cluster of the test's own, in a module that shares one."""
    cluster_config.up()
    return cluster_config


def _module_settings(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    marks = getattr(request.module, "pytestmark", [])
    marks = [m for m in (marks if isinstance(marks, list) else [marks]) if m.name == "cluster_settings"]
    return marks[0].kwargs if marks else None


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """One running cluster for a whole module, with the module's
    `cluster_settings` mark (if any) as extra [cluster] settings."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with cluster_lifecycle(tmp_path_factory.mktemp(name) / "cluster", f"shared-{name}", _module_settings(request)) as c:
        yield c


@pytest.fixture
def shared_cluster(module_cluster: Cluster, request: pytest.FixtureRequest) -> Cluster:
    """The module's cluster for one test: its log is checked after the test
    and attached when the test fails, like a fresh cluster's. A test that left
    a node stopped fails the next one here, loudly, rather than letting it
    run on a degraded cluster. A test's own cluster_settings mark would be
    ignored here, so it is refused: such a test asks for a cluster of its own."""
    own = [m for m in request.node.own_markers if m.name == "cluster_settings"]
    assert not own, "a test with its own cluster_settings cannot use the module's shared cluster"
    down = [n for n in module_cluster.ids if n not in module_cluster.alive()]
    assert not down, f"the module's shared cluster has stopped nodes {down}: a test that stops nodes must use fresh_cluster"
    request.node.stash.setdefault(CLUSTERS, []).append(module_cluster)
    return module_cluster


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
