"""GET /metrics: this node's state in the Prometheus text exposition format.

Written by hand (format version 0.0.4), no client library: a handful of
gauges and one counter, each read from the node as it stands. Nothing here
touches another node.

`dex_trades_total{symbol}` counts the trades this node has applied since its
process started, fed by `TradeCounter`, a block listener that dex/node.py
registers.
"""

from __future__ import annotations

import threading
from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from dex.api.cluster import node_status
from dex.api.deps import NodeDep
from dex.core.events import Trade

router = APIRouter(tags=["cluster"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TradeCounter:
    """Trades per symbol in the blocks this node applies. Called on the Raft
    thread with (header, block_hash, proposal, results): O(events), and the
    counts are read from the API's thread under the same lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._height = 0

    def __call__(self, header, block_hash, proposal, results) -> None:
        found: Counter[str] = Counter()
        for events in results:
            for ev in events:
                if ev.__class__ is Trade:
                    found[ev.symbol] += 1
        with self._lock:
            if header.height <= self._height:
                return  # seen already (a replay): never count a block twice
            self._height = header.height
            self._counts.update(found)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples) -> None:
        """samples: [(labels dict or None, value)]"""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
                self.lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(node, trade_counts: dict[str, int], fast_path_requests: int | None = None) -> str:
    s = node_status(node)
    symbols = [m.symbol for m in node.cfg.markets.markets]
    resting = node.port.resting_counts(symbols)
    out = _Exposition()
    out.metric("dex_head_height", "gauge", "Height of the last block this node applied.", [(None, s["headHeight"])])
    out.metric("dex_raft_term", "gauge", "This node's current Raft term.", [(None, s["term"])])
    out.metric("dex_is_leader", "gauge", "1 if this node is the Raft leader.", [(None, s["role"] == "leader")])
    out.metric("dex_has_quorum", "gauge", "1 if this node sees a quorum.", [(None, s["hasQuorum"])])
    out.metric("dex_commit_index", "gauge", "Raft commit index.", [(None, s["commitIndex"])])
    out.metric("dex_last_applied", "gauge", "Raft index of the last entry applied.", [(None, s["lastApplied"])])
    out.metric("dex_pending_commands", "gauge", "Commands waiting in the block builder.", [(None, s["pendingCommands"])])
    out.metric("dex_inflight_blocks", "gauge", "Blocks proposed and not yet applied.", [(None, s["inflightBlocks"])])
    out.metric("dex_shed_requests_total", "counter", "Requests refused 503 -1008 by the leader's admission (expected wait over budget).", [(None, s["shedRequests"])])
    if s.get("commitMsP50") is not None:
        out.metric(
            "dex_block_commit_ms_p50", "gauge", "Median ms from proposing a block to applying it here (recent blocks).",
            [(None, s["commitMsP50"])],
        )
    if s.get("applyMsP50") is not None:
        out.metric(
            "dex_block_apply_ms_p50", "gauge",
            "Median ms from a block's time (sealed by the leader) to its apply on this node (recent blocks, this node's clock).",
            [(None, s["applyMsP50"])],
        )
    out.metric("dex_resting_orders", "gauge", "Live orders resting in the book.", [({"symbol": sym}, n) for sym, n in resting.items()])
    out.metric(
        "dex_trades_total", "counter", "Trades this node has applied since it started.",
        [({"symbol": sym}, trade_counts.get(sym, 0)) for sym in symbols],
    )
    channel = getattr(node, "channel", None)
    if channel is not None:
        out.metric("dex_forward_frames_total", "counter", "Frames this node sent on its forward channel to the leader.", [(None, channel.frames_sent)])
        out.metric("dex_forward_requests_total", "counter", "Requests this node forwarded to the leader in those frames.", [(None, channel.requests_sent)])
        out.metric("dex_forward_shed_total", "counter", "Requests this follower refused 503 -1008 itself: just after the leader shed one of its forwards, or while its oldest unsent forward had waited past the admission budget.", [(None, channel.shed_early)])
        out.metric("dex_forward_queue_shed_total", "counter", "Of dex_forward_shed_total, those refused while this follower's oldest unsent forward had waited past the admission budget.", [(None, channel.shed_queued)])
    if fast_path_requests is not None:
        out.metric("dex_fast_path_requests_total", "counter", "Order requests served without FastAPI's layers (dex/api/fastpath.py).", [(None, fast_path_requests)])
    store = s.get("store") or {}
    if store.get("enabled"):
        out.metric("dex_store_up", "gauge", "1 if the trade store answered this node's last query.", [(None, bool(store.get("up")))])
        out.metric("dex_store_writer", "gauge", "1 if this node is the trade store's writer.", [(None, bool(store.get("writer")))])
        if store.get("cursorHeight") is not None:
            out.metric("dex_store_cursor_height", "gauge", "Last block in the trade store, as this node last read it.", [(None, store["cursorHeight"])])
            out.metric("dex_store_lag_blocks", "gauge", "Blocks this node holds that the trade store does not.", [(None, store["lagBlocks"])])
            out.metric("dex_store_lag_seconds", "gauge", "Age of the oldest block not yet in the trade store.", [(None, store["lagS"])])
        out.metric("dex_store_trades_written_total", "counter", "Trades this node wrote to the store since it started.", [(None, store.get("tradesWritten", 0))])
    return out.text()


@router.get("/metrics", summary="Prometheus metrics of this node", response_class=PlainTextResponse)
async def metrics(node: NodeDep, request: Request):
    counter = getattr(request.app.state.node, "trade_counter", None)
    counts = counter.counts() if counter is not None else {}
    fast_path = getattr(request.app.state, "fast_path", None)
    return PlainTextResponse(render(node, counts, None if fast_path is None else fast_path.served), media_type=CONTENT_TYPE)
