"""The cluster fixtures and their log checks, for the audit's cluster tests."""

from tests.cluster.conftest import *  # noqa: F403
