"""The README's Quick start, run as a new user types it, against a cluster of
real node processes, so the README cannot drift from what works.

`make up` and `make down` are the Makefile's own recipe lines for the
cluster (its `dex cluster init/up/down` lines, read from the Makefile); the
install step `make up` depends on is the environment this test runs in, and
`make test` is this suite. Every `.venv/bin/dex` line of the walkthrough
runs as written, in bash, from a working directory whose
configs/local-4.toml (the CLI's default config) is the test cluster's, and
must exit 0. `dex chaos --seed 7 --duration 60` is only parsed (with the
CLI's own parser): its minute of faults runs in tests/cluster as a short
profile."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from dex.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
SECTION = "## Quick start"
DEX = ".venv/bin/dex"
CONFIG = "configs/local-4.toml"  # the Makefile's CONFIG default
WALKTHROUGH_TIMEOUT_S = 240.0


def quick_start_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target, as the shell gets them."""
    lines = MAKEFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line[1:].lstrip("-@"))
    assert recipe, f"no recipe for make {target}"
    return recipe


def make_line_to_shell(line: str, dex: str) -> str:
    out = line.replace("$(VENV)/bin/dex", dex).replace("$(CONFIG)", CONFIG)
    assert "$(" not in out, f"a Makefile variable this test does not know: {line!r}"
    return out


def test_the_readme_quick_start_runs_as_written(tmp_path: Path, cluster_config) -> None:
    setup, walkthrough = quick_start_blocks()
    assert [line.split("#")[0].strip() for line in setup.splitlines()] == ["make up", "make test"], "the Quick start changed: update this test"
    dex = str(Path(sys.executable).parent / "dex")
    assert Path(dex).exists(), f"no dex script next to {sys.executable}: run `make install`"
    up = [make_line_to_shell(line, dex) for line in make_recipe("up") if "bin/dex" in line]
    down = [make_line_to_shell(line, dex) for line in make_recipe("down") if "bin/dex" in line]
    assert any("cluster up --detach" in line for line in up) and any("cluster down" in line for line in down)

    commands: list[str] = list(up)
    parsed_only = []
    for line in walkthrough.splitlines():
        command = line.split("#")[0].strip()
        if not command:
            continue  # a comment continuing the line above
        if command == "make down":
            commands += down
        elif command.startswith(f"{DEX} chaos"):
            parsed_only.append(command)
        else:
            assert command.startswith(f"{DEX} "), f"a Quick start line this test does not know: {command!r}"
            commands.append(command.replace(DEX, dex))
    assert [c for c in commands if "cluster demo" in c] and [c for c in commands if "audit --node n1 --at " in c], commands
    assert len(parsed_only) == 1
    chaos = build_parser().parse_args(shlex.split(parsed_only[0])[1:])
    assert (chaos.seed, chaos.duration) == (7, 60), vars(chaos)

    work = tmp_path / "user"
    (work / "configs").mkdir(parents=True)
    (work / "configs" / "local-4.toml").symlink_to(cluster_config.cfg.path)
    script = "set -euo pipefail\n" + "".join(f"echo '+ {c}'\n{c}\n" for c in commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEX_")}
    p = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=WALKTHROUGH_TIMEOUT_S, env=env)
    out = p.stdout
    assert p.returncode == 0, f"the README's Quick start failed (exit {p.returncode}):\n{out}\n{p.stderr}"

    assert re.search(r"acknowledged orders: 0 lost, 0 duplicated", out), out  # the demo's own check
    assert "caught up in" in out and "every node at height" in out
    assert out.count("result: OK") == 2 and "state after block " in out, out  # both audits, the second with the state
    assert re.search(r"killed n2 \(pid \d+, SIGKILL\)", out) and "hashes agree" in out, out
    assert re.search(r"restarted n2 \(pid \d+\), answering at \S+; caught up to height \d+ \(the others' head was \d+\)", out), out
    assert not cluster_config.alive(), "make down left nodes running"
