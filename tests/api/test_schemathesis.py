"""A bounded schemathesis run against a real node's OpenAPI schema.

Every operation of /openapi.json gets schemathesis's examples, coverage,
fuzzing (positive and negative data) and stateful phases, a bounded and
deterministic number of cases each, against the leader of a real four-node
cluster. Checks: no response is a 5xx (`not_a_server_error`) and every 4xx
body is the wire error `{"code": int, "msg": str}` (`error_body_is_code_msg`,
tests/api/schemathesis_hooks.py).

Half the requests are signed by a funded account (the hooks' SignRequest),
so fuzzed orders, cancels, amends and batches reach validation, the engine
and the block builder; the other half test the 401 path. The ledger must
then hold commands that account signed during the run, or the signing did
not work and the run only ever saw 401s.

The node logs are scanned too: the API logs "unexpected error" for anything
it answered as a 500.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import schemathesis  # noqa: F401  (a test dependency: fail loudly if missing)

from dex.auth import Keypair
from dex.client import Client
from tests.cluster.harness import Cluster

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 25  # per operation and phase; the whole run takes ~20 s
RUN_TIMEOUT_S = 180.0
FUNDS = (("USDT", "1000000"), ("BTC", "100"))  # the signing account's, so fuzzed orders can rest
UNEXPECTED_ERROR_LINE = "unexpected error on"  # dex/api/errors.py, logged for every 500


def _schemathesis_cli() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "the schemathesis CLI is not installed (pip install -e '.[test]')"
    return found


def test_no_input_yields_a_server_error_or_a_malformed_error(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.url(cluster.wait_leader())
    fuzzer = Keypair.generate()
    client = Client(url, fuzzer)
    for asset, amount in FUNDS:
        client.deposit(asset, amount)
    env = {
        **os.environ,
        "DEX_FUZZ_KEY": fuzzer.private.hex(),
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "NO_PROXY": "*",
    }
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    cmd = [
        _schemathesis_cli(), "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error,error_body_is_code_msg",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--no-shrink",
        "--workers", "1",  # hypothesis describes strategies with ast.parse, which CPython 3.11 can break in threads (SystemError: AST constructor recursion depth mismatch)
        "--request-timeout", "15",
        "--no-color",
        "--output-truncate", "false",
    ]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis exited {run.returncode}:\n{output[-20000:]}"
    assert "Custom check failed" not in output and "Server error" not in output, output[-20000:]

    signed = _auths_by(url, fuzzer.api_key)
    assert signed > len(FUNDS), f"only {signed} commands signed by the fuzz account reached the ledger: signing failed"

    unexpected = []
    for path in cluster.log_paths():
        with open(path, errors="replace") as f:
            unexpected += [f"{path}: {line.rstrip()}" for line in f if UNEXPECTED_ERROR_LINE in line]
    assert not unexpected, "the API answered 500s:\n" + "\n".join(unexpected[:20])


def _auths_by(url: str, api_key: str) -> int:
    """How many signatures in the node's ledger are `api_key`'s."""
    import httpx

    with httpx.Client(base_url=url, timeout=10.0) as http:
        height = http.get("/api/v1/blocks", params={"limit": 1}).json()["height"]
        count = 0
        for h in range(1, height + 1):
            block = http.get(f"/api/v1/blocks/{h}").json()
            count += sum(1 for a in block["auths"] if a["publicKey"] == api_key)
    return count
