"""What a test needs to simulate a power loss: the length of each ledger
file that is known durable.

With DEX_RECORD_SYNCED_LENGTHS set, every fsync of the Raft journal
(dex/ledger/journal.py) and of the chain (dex/ledger/chain.py) writes the
file's length at that moment beside it, in `<file>.synced`. A power-loss test
SIGKILLs every node, cuts each file back to that length (what a power loss
keeps of a file: only what was fsynced), and restarts them. Off by default:
production writes no sidecar."""

from __future__ import annotations

import os
from pathlib import Path

SYNCED_SIDECAR_ENV = "DEX_RECORD_SYNCED_LENGTHS"
_ON = bool(os.environ.get(SYNCED_SIDECAR_ENV))


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".synced")


def record_synced_length(path: Path, length: int) -> None:
    """Note that the first `length` bytes of `path` are durable."""
    if _ON:
        tmp = path.with_name(path.name + ".synced.tmp")
        tmp.write_text(str(length))
        os.replace(tmp, sidecar(path))


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
