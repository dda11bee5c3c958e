"""The web dashboard: its page and assets, chain verification, and, on local
clusters only, killing and restarting nodes from the page.

The page's sources live in web/ and are built into dex/api/static/ by
`make assets` (npm ci + web/build.mjs); the build output is not committed.
Without it, `/` answers a page saying so (503), never a 500.

Kill and restart exist only where every node of the config is bound to
loopback (`cfg.loopback_only`): elsewhere the routes answer 404 as if they
did not exist. They need the cluster secret in `X-DEX-CLUSTER-SECRET`,
compared in constant time; the secret is never logged or echoed. The work is
done by cluster.local, the same code as `dex cluster kill|restart`: a kill
of this node itself is sent after the answer; a restart always runs as a
detached `dex cluster restart` process, so it outlives the node it stops.

CORS admits the cluster's own nodes as origins: when the node that served
the page dies, the page carries on against another node, a different origin.
"""

from __future__ import annotations

import asyncio
import hmac
import subprocess
import sys
import time
from pathlib import Path

from fastapi import APIRouter, BackgroundTasks, Header, Path as PathParam, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from dex.api.deps import NodeDep
from dex.api.errors import NOT_FOUND, OVERLOADED, UNAUTHORIZED, ApiError
from dex.config import ConfigError

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"
SECRET_HEADER = "X-DEX-CLUSTER-SECRET"
SECRET_HEADER_LENGTH_MAX = 256
RESTARTS_INFLIGHT_MAX = 4  # detached `dex cluster restart` processes at once, per node
VERIFY_PROBLEMS_SHOWN_MAX = 20
# Anyone may ask, and a verification reads the whole chain file: at most one
# per VERIFY_INTERVAL_S per node; callers in between get the last result.
VERIFY_INTERVAL_S = 10.0
NODE_ID_LENGTH_MAX = 64

router = APIRouter(tags=["dashboard"])

MISSING_ASSETS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dex: dashboard not built</title>
<style>body{background:#0b0e11;color:#eaecef;font:15px/1.5 system-ui,sans-serif;margin:4em}code{color:#f0b90b}</style>
</head><body><h1>The dashboard is not built</h1>
<p>This node serves the dashboard from <code>dex/api/static/</code>, which is empty.
Build it once with <code>make assets</code> (runs <code>npm ci</code> and <code>npm run build</code> in <code>web/</code>),
then reload. The API itself is up: see <a href="/docs" style="color:#f0b90b">/docs</a>.</p>
</body></html>"""


class _Static(StaticFiles):
    """StaticFiles that answers 404 (not an error) while the build output is missing."""

    async def check_config(self) -> None:
        _assets_built()
        await super().check_config()

    async def get_response(self, path: str, scope):
        _assets_built()  # also after check_config passed once: the build output can be removed
        return await super().get_response(path, scope)


def _assets_built() -> None:
    if not STATIC_DIR.is_dir():
        raise ApiError(404, NOT_FOUND, "Dashboard assets are not built: run `make assets`.")


router.mount("/static", _Static(directory=STATIC_DIR, check_dir=False), name="static")


@router.get("/", include_in_schema=False)
async def index():
    page = STATIC_DIR / INDEX_FILE
    if not page.is_file():
        return HTMLResponse(MISSING_ASSETS_PAGE, status_code=503)
    # The page is small and changes with every build: never cache it.
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


# --- chain verification ----------------------------------------------------

@router.get("/api/v1/chain/verify", summary="Re-read this node's chain file and check every block (crc, heights, parent links)")
async def chain_verify(request: Request, node: NodeDep):
    """One verification at a time per node, and at most one per
    VERIFY_INTERVAL_S: a caller in between gets the last result (`ageS` says
    how old). The check reads the whole file, in a thread. `ok` is false when
    any problem was found; the first problems are listed, each naming a height."""
    chain = node.port.chain
    state = request.app.state
    if getattr(state, "verify_lock", None) is None:
        state.verify_lock = asyncio.Lock()  # made on the app's own loop
        state.verify_last = None  # (monotonic time, answer)
    async with state.verify_lock:
        last = state.verify_last
        if last is not None and time.monotonic() - last[0] < VERIFY_INTERVAL_S:
            return {**last[1], "ageS": round(time.monotonic() - last[0], 3)}
        started = time.monotonic()
        height = chain.height
        problems = await asyncio.to_thread(chain.verify)
        took_ms = (time.monotonic() - started) * 1000
        answer = {
            "node": node.node_id,
            "ok": not problems,
            "height": height,
            "baseHeight": chain.base_height,
            "problemsCount": len(problems),
            "problems": problems[:VERIFY_PROBLEMS_SHOWN_MAX],
            "tookMs": round(took_ms, 1),
        }
        state.verify_last = (started, answer)
    return {**answer, "ageS": 0.0}


# --- kill and restart (local clusters only) --------------------------------

_restarts: list[subprocess.Popen] = []


def _local_only(node) -> None:
    if not node.cfg.loopback_only:
        raise ApiError(404, NOT_FOUND, "Not Found")


def _check_secret(node, given: str | None) -> None:
    try:
        secret = node.cfg.secret()
    except ConfigError:
        raise ApiError(403, UNAUTHORIZED, "This node has no cluster secret to check against.") from None
    if not given or not hmac.compare_digest(given.encode(), secret.encode()):
        raise ApiError(403, UNAUTHORIZED, f"The cluster secret in {SECRET_HEADER} is missing or wrong.")


def _target(node, node_id: str) -> str:
    try:
        node.cfg.node(node_id)
    except ConfigError:
        raise ApiError(404, NOT_FOUND, f"No node {node_id!r} in this cluster.") from None
    return node_id


SecretHeader = Header(default=None, alias=SECRET_HEADER, max_length=SECRET_HEADER_LENGTH_MAX)
NodeIdParam = PathParam(max_length=NODE_ID_LENGTH_MAX)


def _shown_path(path: Path, config_path: Path) -> str:
    """Where the secret lives, relative to the repository the config is in
    (`var/local-4/cluster.secret`), never an absolute path that would tell
    anyone the machine's layout; only the file name when it lies elsewhere."""
    try:
        return str(path.resolve().relative_to(config_path.resolve().parent.parent))
    except ValueError:
        return path.name


@router.get("/api/v1/admin/nodes", summary="Local clusters only: the nodes the dashboard may kill and restart")
async def admin_nodes(node: NodeDep):
    """404 on any config that is not loopback-only. No secret needed to ask;
    the answer says where the secret lives, never what it is."""
    _local_only(node)
    from cluster import local

    return {
        "enabled": True,
        "secretFile": _shown_path(node.cfg.secret_file, node.cfg.path),
        "secretHeader": SECRET_HEADER,
        "nodes": [{"id": n.id, "apiUrl": n.api_url, "running": local.node_pid(node.cfg, n.id) is not None} for n in node.cfg.nodes],
    }


@router.post("/api/v1/admin/nodes/{node_id}/kill", summary="Local clusters only: SIGKILL a node (needs the cluster secret)")
async def admin_kill(node: NodeDep, background: BackgroundTasks, node_id: str = NodeIdParam, secret: str | None = SecretHeader):
    _local_only(node)
    _check_secret(node, secret)
    _target(node, node_id)
    from cluster import local

    running = local.node_pid(node.cfg, node_id) is not None
    if node_id == node.node_id:
        # Killing ourselves: answer first, then the signal (after the response is sent).
        background.add_task(local.kill_node, node.cfg, node_id)
    elif running:
        running = await asyncio.to_thread(local.kill_node, node.cfg, node_id)
    return {"node": node_id, "action": "kill", "wasRunning": running}


@router.post("/api/v1/admin/nodes/{node_id}/restart", status_code=202, summary="Local clusters only: stop a node if it runs and start it again (needs the cluster secret)")
async def admin_restart(node: NodeDep, node_id: str = NodeIdParam, secret: str | None = SecretHeader):
    _local_only(node)
    _check_secret(node, secret)
    _target(node, node_id)
    _restarts[:] = [p for p in _restarts if p.poll() is None]  # reaps the finished ones
    if len(_restarts) >= RESTARTS_INFLIGHT_MAX:
        raise ApiError.unavailable(OVERLOADED, f"{len(_restarts)} restarts are already under way. Please try again.")
    command = [sys.executable, "-m", "dex.cli", "cluster", "restart", node_id, "--config", str(node.cfg.path)]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives this node, even when it is the one restarted
        close_fds=True,
    )
    _restarts.append(proc)
    return {"node": node_id, "action": "restart", "accepted": True}


# --- CORS between the nodes of one cluster ----------------------------------

CORS_METHODS = ["GET", "POST", "PUT", "DELETE"]
CORS_HEADERS = ["Content-Type", "X-API-KEY", "X-TIMESTAMP", "X-SIGNATURE", SECRET_HEADER]
CORS_MAX_AGE_S = 600
LOOPBACK_ALIASES = ("127.0.0.1", "localhost")


def node_origins(cfg) -> list[str]:
    """The origins the page can be loaded from: every node's API URL (and its
    other loopback spelling) and its public URL, if set. When its node dies,
    the page carries on against another node of the cluster, which is a
    different origin."""
    origins = []
    for n in cfg.nodes:
        hosts = LOOPBACK_ALIASES if n.api_host in LOOPBACK_ALIASES else (n.api_host,)
        origins += [f"http://{host}:{n.api_port}" for host in hosts]
        if n.public_url:
            origins.append(n.public_url)
    return sorted(set(origins))


def allow_node_origins(app, cfg) -> None:
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=node_origins(cfg),
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        max_age=CORS_MAX_AGE_S,
    )
