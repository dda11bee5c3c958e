"""The real-cluster fixtures (`cluster`, `cluster_config`) and their log
check, shared with tests/cluster."""

from tests.cluster.conftest import *  # noqa: F403
