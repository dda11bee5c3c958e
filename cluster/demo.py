"""The failover demo: drive a running local cluster through a leader kill and back."""

from __future__ import annotations

from dex.config import ClusterConfig


def demo(cfg: ClusterConfig) -> None:
    raise NotImplementedError("written next")
