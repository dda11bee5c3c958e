"""The dashboard's routes in-process, against a node stand-in that has only a
config: kill/restart exist only on loopback configs (404 elsewhere) and need
the cluster secret (403 without it); `/` without built assets is a page
saying what to run, not a 500; CORS admits exactly the cluster's nodes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cluster import local
from dex.api import dashboard, errors
from dex.config import SECRET_ENV, load_cluster
from tests.cluster.harness import write_config

PORTS = [21001, 21002, 21003, 21004, 21005, 21006, 21007, 21008]


def app_for(cfg) -> TestClient:
    app = FastAPI()
    app.state.node = SimpleNamespace(cfg=cfg, node_id=cfg.nodes[0].id)
    errors.install(app)
    app.include_router(dashboard.router)
    dashboard.allow_node_origins(app, cfg)
    return TestClient(app)


@pytest.fixture
def local_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = load_cluster(write_config(tmp_path, name="routes", ports=PORTS))
    local.init(cfg)
    assert cfg.loopback_only
    return cfg


@pytest.fixture
def remote_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    path = write_config(tmp_path, name="remote", ports=PORTS)
    path.write_text(path.read_text().replace('api = "127.0.0.1:21002"', 'api = "10.0.0.2:21002"'))
    cfg = load_cluster(path)
    assert not cfg.loopback_only
    return cfg


@pytest.mark.parametrize("action", ["kill", "restart"])
def test_admin_needs_the_cluster_secret(local_cfg, action):
    client = app_for(local_cfg)
    missing = client.post(f"/api/v1/admin/nodes/n2/{action}")
    wrong = client.post(f"/api/v1/admin/nodes/n2/{action}", headers={dashboard.SECRET_HEADER: "not-the-secret-at-all"})
    for r in (missing, wrong):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == errors.UNAUTHORIZED
    assert local_cfg.secret() not in wrong.text


def test_admin_kill_with_the_secret_reaches_the_process_manager(local_cfg):
    client = app_for(local_cfg)
    secret = {dashboard.SECRET_HEADER: local_cfg.secret()}
    r = client.post("/api/v1/admin/nodes/n2/kill", headers=secret)
    assert r.status_code == 200, r.text
    assert r.json() == {"node": "n2", "action": "kill", "wasRunning": False}  # nothing runs in this test
    unknown = client.post("/api/v1/admin/nodes/n9/kill", headers=secret)
    assert unknown.status_code == 404 and unknown.json()["code"] == errors.NOT_FOUND
    listing = client.get("/api/v1/admin/nodes").json()
    assert [n["id"] for n in listing["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert local_cfg.secret() not in str(listing)
    assert listing["secretFile"].endswith("cluster.secret") and not listing["secretFile"].startswith("/"), listing["secretFile"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/admin/nodes"),
    ("POST", "/api/v1/admin/nodes/n2/kill"),
    ("POST", "/api/v1/admin/nodes/n2/restart"),
])
def test_admin_routes_do_not_exist_off_loopback(remote_cfg, method, path):
    client = app_for(remote_cfg)
    r = client.request(method, path, headers={dashboard.SECRET_HEADER: remote_cfg.secret()})
    assert r.status_code == 404, r.text
    assert r.json()["code"] == errors.NOT_FOUND


def test_index_without_assets_says_to_build_them(local_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(dashboard, "STATIC_DIR", tmp_path / "not-built")
    client = app_for(local_cfg)
    r = client.get("/")
    assert r.status_code == 503
    assert "make assets" in r.text
    asset = client.get("/static/js/app.js")
    assert asset.status_code == 404 and asset.json()["code"] == errors.NOT_FOUND


def test_index_and_assets_when_built(local_cfg):
    if not (dashboard.STATIC_DIR / "index.html").exists():
        pytest.skip(f"*** NO DASHBOARD ASSETS in {dashboard.STATIC_DIR}: run `make assets` ***")
    client = app_for(local_cfg)
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/js/app.js">' in page.text
    script = client.get("/static/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    chart = client.get("/static/vendor/lightweight-charts.mjs")
    assert chart.status_code == 200 and "createChart" in chart.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text  # everything from the node
    assert client.get("/static/../dashboard.py").status_code == 404


def test_cors_admits_the_cluster_nodes_only(local_cfg):
    client = app_for(local_cfg)
    other_node = local_cfg.nodes[1].api_url
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key,x-signature,x-timestamp,content-type"}
    ok = client.options("/api/v1/admin/nodes", headers={"Origin": other_node, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == other_node
    stranger = client.options("/api/v1/admin/nodes", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in stranger.headers
