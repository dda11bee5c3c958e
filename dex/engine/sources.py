"""What the compiled engine is built from, and their digest.

One list for setup.py, which compiles these modules (their .py and .pxd,
and the headers they include) and stamps the build with the digest of the
copies it compiled, and for `dex.engine`, which runs the compiled engine
only when that stamp is the digest of the sources beside it. setup.py loads
this file by its path, before dex is installed: it imports nothing of dex.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODULES = ("book", "engine", "snapshot", "invariants", "digest", "wire")  # compiled in this order
HEADERS = ("dex_sha256.h",)  # C the modules include (SHA-256 through OpenSSL)


def source_digest(engine_dir: Path) -> str:
    """SHA-256 over the engine's sources in `engine_dir`. A file that is
    missing (a packaging slip) digests differently: the build reads as stale
    and the pure engine runs, rather than a crash."""
    h = hashlib.sha256()
    for name in MODULES:
        for suffix in (".py", ".pxd"):
            path = engine_dir / (name + suffix)
            if path.exists():
                h.update(f"{name}{suffix}\0".encode() + path.read_bytes() + b"\0")
    for header in HEADERS:
        path = engine_dir / header
        if path.exists():
            h.update(f"{header}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()
