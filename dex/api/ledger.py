"""The block explorer: headers, and one block's orders, signatures and results."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Path, Query

from dex.api import render
from dex.api.deps import NodeDep
from dex.api.errors import NOT_FOUND, ApiError
from dex.ledger.codec import NO_AUTH, decode_events, decode_proposal

router = APIRouter(prefix="/api/v1", tags=["ledger"])

BLOCKS_LIMIT_MAX = 100


def header_json(header, block_hash: bytes) -> dict:
    return {
        "height": header.height,
        "hash": block_hash.hex(),
        "parentHash": header.parent.hex(),
        "leader": header.leader,
        "term": header.term,
        "time": header.time_ms,
        "commandsCount": header.commands_count,
        "commandsRoot": header.commands_root.hex(),
        "resultsRoot": header.results_root.hex(),
        "stateHash": header.state_hash.hex(),
        "version": header.version,  # the header's (and its state hash's): 1 or 2, dex/ledger/codec.py
    }


def _command_json(markets, cmd) -> dict:
    d = {"command": type(cmd).__name__}
    m = markets.get(getattr(cmd, "symbol", None) or "")
    for k in cmd._fields:
        v = getattr(cmd, k)
        name = "".join(w.capitalize() if i else w for i, w in enumerate(k.split("_")))
        if k == "account":
            v = str(v)
        elif hasattr(v, "name"):
            v = v.name
        elif m is not None and k == "price":
            v = render.price(m, v)
        elif m is not None and k == "qty":
            v = render.qty(m, v)
        elif m is not None and k == "quote_qty":
            v = render.quote(m, v)
        d[name] = v
    return d


@router.get("/blocks", summary="Recent blocks (newest first)")
async def blocks(node: NodeDep, fromHeight: int | None = Query(default=None, ge=1, le=2**63 - 1), limit: int = Query(default=20, ge=1, le=BLOCKS_LIMIT_MAX)):
    chain = node.port.chain
    top = chain.height if fromHeight is None else min(fromHeight, chain.height)
    out = []
    for height in range(top, max(chain.base_height, top - limit), -1):
        header = chain.header(height)
        if header is not None:
            out.append(header_json(header, header.hash))
    return {"height": chain.height, "baseHeight": chain.base_height, "blocks": out}


@router.get("/blocks/{height}", summary="One block: header, orders with signatures, results")
async def block(node: NodeDep, height: int = Path(ge=1, le=2**63 - 1)):
    chain = node.port.chain
    stored = chain.get(height)
    if stored is None:
        raise ApiError(404, NOT_FOUND, f"Block {height} is not on this node (its chain holds {chain.base_height + 1}..{chain.height}).")
    proposal, _ = decode_proposal(stored.proposal)
    markets = {m.symbol: m for m in node.cfg.markets.markets}
    assets = {a.name: a for a in node.cfg.markets.assets}
    at = 0
    commands = []
    trades = []
    for cmd, index in zip(proposal.commands, proposal.auth_index):
        events, at = decode_events(stored.results, at)
        entry = _command_json(markets, cmd)
        entry["auth"] = None if index == NO_AUTH else index
        entry["events"] = [render.event(markets, assets, e) for e in events]
        trades.extend(e for e in entry["events"] if e["event"] == "Trade")
        commands.append(entry)
    return {
        "header": header_json(stored.header, stored.hash),
        "auths": [
            {
                "publicKey": a.public_key.hex(),
                "timestamp": a.timestamp_ms,
                "signature": base64.b64encode(a.signature).decode(),
                "payload": a.payload.decode("utf-8", "replace"),
            }
            for a in proposal.auths
        ],
        "commands": commands,
        "trades": trades,
    }
