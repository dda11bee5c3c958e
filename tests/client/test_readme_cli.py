"""The README's CLI session ("Python client and CLI"), run as written in bash
against a real cluster, so the README cannot drift from the `dex` command:
every line must exit 0, and what it says it shows must be there.

Only two things differ from a user's shell: `.venv/bin/dex` is this
interpreter's own `dex`, and the working directory is a fresh one whose
configs/local-4.toml (the CLI's default config) is the test cluster's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from dex.client import Client
from dex.keyfile import load_key

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Python client and CLI"
DEX = ".venv/bin/dex"
SESSION_TIMEOUT_S = 300.0


def readme_cli_session() -> str:
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if DEX in b]
    assert len(blocks) == 1, f"expected one ```sh block using {DEX} under {SECTION!r}: update this test"
    return blocks[0]


def outputs(out: str) -> dict[str, str]:
    """Each command's output, by the `+ command` line echoed before it."""
    shown: dict[str, str] = {}
    for part in ("\n" + out).split("\n+ ")[1:]:
        command, _, text = part.partition("\n")
        shown[command] = text
    return shown


def test_the_readme_cli_session_runs_as_written(tmp_path: Path, cluster) -> None:
    session = readme_cli_session()
    assert "keys new --out alice.key" in session and "--type MARKET" in session, "the session changed: update this test"
    work = tmp_path / "user"
    (work / "configs").mkdir(parents=True)
    (work / "configs" / "local-4.toml").symlink_to(cluster.cfg.path)
    dex = str(Path(sys.executable).parent / "dex")
    assert Path(dex).exists(), f"no dex script next to {sys.executable}: run `make install`"
    script = "set -euo pipefail\n" + "".join(f"echo '+ {line.split('#')[0].strip()}'\n{line}\n" for line in session.replace(DEX, dex).splitlines() if line.strip())
    env = {k: v for k, v in os.environ.items() if k != "DEX_KEY_FILE"}
    p = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=SESSION_TIMEOUT_S, env=env)
    out = p.stdout
    assert p.returncode == 0, f"the README's CLI session failed (exit {p.returncode}):\n{out}\n{p.stderr}"

    alice = Client(cluster.urls, load_key(work / "alice.key"))
    assert ((work / "alice.key").stat().st_mode & 0o777) == 0o600
    assert f"account  {alice.keys.account}" in out  # keys new and keys show
    assert alice.keys.private.hex() not in out + p.stderr
    assert "1000 orders: 1000 accepted, 0 rejected" in out
    assert "canceled 1000 open orders in BTCUSDT" in out
    # alice's market buy took 0.004 from bob's ask at 50000: the CLI showed the average fill.
    assert re.search(r"FILLED\s+avg 50000\.00\s", out), out
    fills = alice.my_trades("BTCUSDT")
    assert [(f["price"], f["isBuyer"]) for f in fills] == [("50000.00", True)]
    fills_shown = outputs(out)[f"{dex} fills BTCUSDT"].splitlines()
    assert len(fills_shown) == 2 and fills_shown[1].split()[0] == str(fills[0]["id"]), fills_shown
    assert alice.open_orders() == []
    alice.close()
