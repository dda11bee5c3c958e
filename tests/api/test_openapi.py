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
