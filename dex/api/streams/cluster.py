"""The `blocks` and `cluster` streams: one message per applied block (sent
last for its block, so a client that sees block h has every other message of
h), and the cluster status, polled while anyone subscribes and pushed when it
changes (at least every CLUSTER_HEADS_S while heads move)."""

from __future__ import annotations

import asyncio
import logging
import time

from dex.api.cluster import nodes_status
from dex.api.ledger import header_json
from dex.api.streams.wire import CLUSTER_HEADS_S, CLUSTER_POLL_S, OTHER, now_ms, text

log = logging.getLogger("dex.api.streams")


def block_message(header, block_hash: bytes, proposal, trades_count: int, now: int) -> tuple:
    """The `blocks` message of an applied block as (OTHER, stream, text, None);
    `commitMs`: ms from the block's time (the leader's clock when it sealed
    it) to this node applying it, on every node (on the leader, its commit
    latency; on a follower, also the time the commit took to reach it)."""
    commit_ms = round(time.time_ns() / 1e6 - proposal.time_ms, 1)
    data = {"e": "block", "E": now, **header_json(header, block_hash)}
    data.update(parent=header.parent.hex(), commands=header.commands_count, trades=trades_count, commitMs=commit_ms)
    return (OTHER, "blocks", text("blocks", data), None)


class ClusterFeed:
    """Event-loop side of the `cluster` stream: one polling task at most."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.doc: dict | None = None  # the last status pushed, for a new subscriber
        self._task: asyncio.Task | None = None

    def subscribed(self, conn) -> None:
        if self.doc is not None:
            self.hub.put(conn, text("cluster", self.doc))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """While anyone subscribes to `cluster`: poll the status, push changes."""
        loop = asyncio.get_running_loop()
        hub = self.hub
        last_key, last_push = None, 0.0
        try:
            while hub.subs.get("cluster"):
                try:
                    doc = await nodes_status(hub.node)
                except Exception:
                    log.exception("cluster status for the stream failed")
                    await asyncio.sleep(CLUSTER_POLL_S)
                    continue
                key = (doc["leader"], doc["term"], tuple((n.get("id"), n.get("role"), n.get("reachable")) for n in doc["nodes"]))
                now = loop.time()
                if key != last_key or now - last_push >= CLUSTER_HEADS_S:
                    self.doc = {"e": "cluster", "E": now_ms(), **doc}
                    message = text("cluster", self.doc)
                    for conn in list(hub.subs.get("cluster", ())):
                        hub.put(conn, message)
                    last_key, last_push = key, now
                await asyncio.sleep(CLUSTER_POLL_S)
        finally:
            self._task = None
            self.doc = None
