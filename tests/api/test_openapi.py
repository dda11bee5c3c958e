"""The OpenAPI document: every route is described, with an example answer."""

from __future__ import annotations


def test_every_route_has_a_summary_and_an_example_answer(openapi_doc: dict) -> None:
    missing = []
    for path, operations in openapi_doc["paths"].items():
        for method, op in operations.items():
            ok = [r for code, r in op.get("responses", {}).items() if code.startswith("2")]
            examples = [c.get("example") for r in ok for c in r.get("content", {}).values()]
            if not op.get("summary") or not any(e is not None for e in examples):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes without a summary or an example answer: {missing}"


def test_signed_and_faucet_routes_are_all_there(openapi_doc: dict) -> None:
    paths = openapi_doc["paths"]
    for method, path in [("post", "/api/v1/order"), ("post", "/api/v1/batchOrders"), ("put", "/api/v1/order/amend"),
                         ("post", "/api/v1/deposit"), ("post", "/api/v1/withdraw"), ("get", "/api/v1/blocks/{height}")]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not in the OpenAPI document"


def test_every_signed_route_requires_the_signature_scheme(openapi_doc: dict) -> None:
    schemes = openapi_doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"X-API-KEY", "X-TIMESTAMP", "X-SIGNATURE"}
    signed = {
        f"{method.upper()} {path}": op.get("security")
        for path, ops in openapi_doc["paths"].items()
        for method, op in ops.items()
        if "(signed" in (op.get("summary") or "")
    }
    assert "POST /api/v1/order" in signed and "POST /api/v1/withdraw" in signed
    assert all(security == [{name: [] for name in schemes}] for security in signed.values()), signed
    public = openapi_doc["paths"]["/api/v1/depth"]["get"]
    assert "security" not in public
