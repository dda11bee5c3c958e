"""`dex completion bash|zsh`: the script printed by the real command, sourced
in a real bash, asked for completions as bash asks (COMP_WORDS/COMP_CWORD)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0


def script(shell: str) -> str:
    p = subprocess.run([sys.executable, "-m", "dex.cli", "completion", shell], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    return p.stdout


def complete(source: str, *words: str) -> list[str]:
    """What bash offers for the last of `words` (the word being typed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = f'source /dev/stdin <<\'DEX_EOF\'\n{source}DEX_EOF\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _dex; printf "%s\\n" "${{COMPREPLY[@]}}"'
    p = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    return sorted(line for line in p.stdout.splitlines() if line)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_options_and_choices() -> None:
    bash = script("bash")
    assert bash.rstrip().endswith("complete -F _dex dex")
    from dex.cli import build_parser

    top = [a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    assert complete(bash, "dex", "") == sorted(top.choices)
    assert complete(bash, "dex", "or") == ["order"]
    assert complete(bash, "dex", "order", "") == ["amend", "cancel", "cancel-all", "list", "place"]
    assert complete(bash, "dex", "order", "place", "BTCUSDT", "") == ["BUY", "SELL"]
    # A positional choice typed does not end the command path: its options still complete.
    assert complete(bash, "dex", "order", "place", "BTCUSDT", "BUY", "0.1", "--type", "") == ["LIMIT", "MARKET"]
    assert complete(bash, "dex", "order", "place", "BTCUSDT", "BUY", "0.1", "--ti") == ["--tif"]
    assert complete(bash, "dex", "--version", "cluster", "st") == ["status"]
    assert complete(bash, "dex", "klines", "BTCUSDT", "--interval", "") == ["15m", "1d", "1h", "1m", "4h", "5m"]
    assert complete(bash, "dex", "keys", "show", "--") == ["--help", "--json", "--key"]
    assert complete(bash, "dex", "completion", "") == ["bash", "zsh"]


def test_zsh_script_is_the_bash_one_behind_bashcompinit() -> None:
    zsh = script("zsh")
    assert zsh.startswith("#compdef dex\n") and "bashcompinit" in zsh
    assert zsh.endswith(script("bash"))
    if shutil.which("zsh"):
        p = subprocess.run(["zsh", "-c", zsh + "\nprint -r -- ${_comps[dex]}"], capture_output=True, text=True, timeout=TIMEOUT_S)
        assert p.returncode == 0 and "_bash_complete" in p.stdout, p.stdout + p.stderr
