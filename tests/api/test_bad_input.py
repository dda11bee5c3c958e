"""Regressions for what the schemathesis run (test_schemathesis.py) found."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from dex.api.app import create_app
from dex.config import load_cluster


def _refs(node):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_every_schema_reference_in_openapi_resolves():
    """The signed routes' bodies (documented by hand from pydantic models)
    once embedded `#/$defs/NewOrder` for POST /api/v1/batchOrders: relative to
    the OpenAPI document that resolves to nothing, so clients and fuzzers
    could not generate or validate its orders."""
    cfg = load_cluster(Path(__file__).resolve().parents[2] / "configs" / "local-4.toml")
    app = create_app(SimpleNamespace(block_listeners=[], cfg=cfg))  # the schema only: no node is started
    doc = app.openapi()
    unresolved = sorted({ref for ref in _refs(doc) if _resolve(doc, ref) is None})
    assert not unresolved, unresolved
    body = doc["paths"]["/api/v1/batchOrders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    order = body["properties"]["batchOrders"]["items"]
    assert set(order["required"]) >= {"symbol", "side", "type"}, order
    assert {"symbol", "side", "type", "price", "quantity"} <= set(order["properties"]), order
