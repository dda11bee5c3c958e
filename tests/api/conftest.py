"""The real-cluster fixtures (`cluster`, `cluster_config`) and their log
check, shared with tests/cluster; and `tuned_cluster`, a running cluster
with extra [cluster] settings from the test's `cluster_settings` marker; and
`openapi_doc`, the API's OpenAPI document with no node started."""

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from dex.api.app import create_app
from dex.config import load_cluster
from tests.cluster.conftest import *  # noqa: F403
from tests.cluster.conftest import cluster_lifecycle
from tests.cluster.harness import REPO, Cluster


@pytest.fixture
def tuned_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    marker = request.node.get_closest_marker("cluster_settings")
    assert marker is not None, "tuned_cluster needs @pytest.mark.cluster_settings(...)"
    with cluster_lifecycle(tmp_path / "cluster", f"test-{request.node.name}", marker.kwargs, item=request.node) as c:
        yield c


@pytest.fixture(scope="session")
def openapi_doc() -> dict:
    """The API's OpenAPI document, from an app around configs/local-4.toml
    with no node started (the schema only)."""
    node = SimpleNamespace(cfg=load_cluster(REPO / "configs" / "local-4.toml"), block_listeners=[], node_id="n1")
    return create_app(node).openapi()
