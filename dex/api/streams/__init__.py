"""WebSocket streams at /ws: depth, trades, candles, blocks, cluster status
and the user stream (the protocol is docs/STREAMS.md), split by what each
serves:

  hub.py      connections, subscriptions, and each block's one pass (Raft thread)
  depth.py    <symbol>@depth: touched levels, the resting-order index, snapshots
  trades.py   <symbol>@trade and <symbol>@kline_1m
  cluster.py  blocks and cluster
  user.py     the user stream (executionReport, balanceUpdate)
  route.py    the /ws endpoint: admission caps, request handling, odd frames
  wire.py     bounds, JSON frames, a connection and its queue

Every read of the replicated state goes through the ledger port
(dex.ledger.port): `port.view()` for a block's reads and for a snapshot
(rendered once per market and height). The threads, ordering and bounds are in hub.py and depth.py.
"""

from dex.api.streams.hub import Hub
from dex.api.streams.route import router
from dex.api.streams.wire import WS_FRAME_BYTES_CLOSE, WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S, Conn

__all__ = ["WS_FRAME_BYTES_CLOSE", "WS_PING_INTERVAL_S", "WS_PING_TIMEOUT_S", "Conn", "Hub", "router"]
