"""A bounded schemathesis run against a real node's OpenAPI schema.

Every operation of /openapi.json gets schemathesis's examples, coverage,
fuzzing (positive and negative data) and stateful phases, a bounded and
deterministic number of cases each, against the leader of a real four-node
cluster. Checks: no response is a 5xx (`not_a_server_error`) and every 4xx
body is the wire error `{"code": int, "msg": str}` (`error_body_is_code_msg`,
tests/api/schemathesis_hooks.py). Signed routes answer 401 to the unsigned
requests schemathesis makes, which is expected and checked like any 4xx.

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

from tests.cluster.harness import Cluster

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 25  # per operation and phase; the whole run takes ~20 s
RUN_TIMEOUT_S = 180.0
UNEXPECTED_ERROR_LINE = "unexpected error on"  # dex/api/errors.py, logged for every 500


def _schemathesis_cli() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "the schemathesis CLI is not installed (pip install -e '.[test]')"
    return found


def test_no_input_yields_a_server_error_or_a_malformed_error(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.url(cluster.wait_leader())
    env = {
        **os.environ,
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

    unexpected = []
    for path in cluster.log_paths():
        with open(path, errors="replace") as f:
            unexpected += [f"{path}: {line.rstrip()}" for line in f if UNEXPECTED_ERROR_LINE in line]
    assert not unexpected, "the API answered 500s:\n" + "\n".join(unexpected[:20])
