"""The FastAPI app factory. Every node serves the same API.

`node` is what dex/node.py wires: `cfg`, `node_id`, `port` (the ledger port),
`history`, `channel` and `channel_server`, `peers`, `hub`, `store`, `trade_counter`. The app reads the
replicated state only through `node.port`."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from dex.api import channel, cluster, dashboard, deps, docs, errors, examples, ledger, market, metrics, ratelimit, streams, trading


TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}


def create_app(node) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await node.start()
        app.state.rate_limiter = ratelimit.AccountLimiter(node.cfg.rate_limit_per_s, node.cfg.rate_limit_burst)
        app.state.hub = node.hub  # WebSocket streams at /ws (dex/node.py feeds it every block)
        yield
        await node.stop()

    app = FastAPI(
        title="dex",
        version="0.1.0",
        description="An order-book exchange whose ledger is replicated by Raft. Errors are {code, msg}; "
        "prices and quantities are decimal strings; signed routes need X-API-KEY, X-TIMESTAMP and X-SIGNATURE.",
        lifespan=lifespan,
        docs_url=None,  # dex/api/docs.py serves /docs and /redoc with local assets, not a CDN's
        redoc_url=None,
        # FastAPI's OpenTelemetry hooks: off. dex exports its own /metrics and
        # configures no OTel provider, yet with them on every request asked
        # OTel for its providers (environment lookups): ~3% of a node's CPU.
        telemetry=TELEMETRY_OFF,
    )
    app.state.node = node
    errors.install(app)
    ratelimit.document_429(trading.router)
    for module in (market, trading, ledger, cluster, metrics, streams):
        app.include_router(module.router)
    app.include_router(channel.router)  # the followers' forward channel (internal, dex/api/channel.py)
    app.include_router(dashboard.router)  # the web page at /, its assets, and local-only node controls
    dashboard.allow_node_origins(app, node.cfg)  # the page moves to another node when its own dies
    examples.install(app)  # a real answer under every route's 200 in /docs
    deps.document_signed_routes(app)  # the signature scheme, required on every signed route
    docs.install(app)  # /docs and /redoc, assets from the node itself (works offline)
    return app
