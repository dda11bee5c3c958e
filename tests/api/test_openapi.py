"""The OpenAPI document: every route is described, with an example answer."""

from __future__ import annotations

from types import SimpleNamespace

from dex.api.app import create_app
from dex.config import load_cluster
from tests.cluster.harness import REPO


def _schema() -> dict:
    cfg = load_cluster(REPO / "configs" / "local-4.toml")
    node = SimpleNamespace(cfg=cfg, block_listeners=[], node_id="n1")
    return create_app(node).openapi()


def test_every_route_has_a_summary_and_an_example_answer() -> None:
    missing = []
    for path, operations in _schema()["paths"].items():
        for method, op in operations.items():
            ok = [r for code, r in op.get("responses", {}).items() if code.startswith("2")]
            examples = [c.get("example") for r in ok for c in r.get("content", {}).values()]
            if not op.get("summary") or not any(e is not None for e in examples):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes without a summary or an example answer: {missing}"


def test_signed_and_faucet_routes_are_all_there() -> None:
    paths = _schema()["paths"]
    for method, path in [("post", "/api/v1/order"), ("post", "/api/v1/batchOrders"), ("put", "/api/v1/order/amend"),
                         ("post", "/api/v1/deposit"), ("post", "/api/v1/withdraw"), ("get", "/api/v1/blocks/{height}")]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not in the OpenAPI document"
