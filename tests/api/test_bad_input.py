"""Regressions for what the schemathesis run (test_schemathesis.py) found."""

from __future__ import annotations




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


def test_every_schema_reference_in_openapi_resolves(openapi_doc: dict):
    """The signed routes' bodies (documented by hand from pydantic models)
    once embedded `#/$defs/NewOrder` for POST /api/v1/batchOrders: relative to
    the OpenAPI document that resolves to nothing, so clients and fuzzers
    could not generate or validate its orders."""
    doc = openapi_doc
    unresolved = sorted({ref for ref in _refs(doc) if _resolve(doc, ref) is None})
    assert not unresolved, unresolved
    body = doc["paths"]["/api/v1/batchOrders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    order = body["properties"]["batchOrders"]["items"]
    assert set(order["required"]) >= {"symbol", "side", "type"}, order
    assert {"symbol", "side", "type", "price", "quantity"} <= set(order["properties"]), order
