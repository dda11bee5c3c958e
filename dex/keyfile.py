"""The account key file that `dex keys new` writes and every signed command
and client reads: JSON `{"account", "apiKey", "privateKey"}` (the private key
as 64 hex characters), mode 0600, never replaced. A file holding only the 64
hex characters is read too.

Invariant: a key file is created owner-only in one step (O_EXCL with the
mode), so there is no moment when another user could read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dex.auth import Keypair

KEY_FILE_MODE = 0o600
PRIVATE_KEY_HEX_CHARS = 64


class KeyFileError(ValueError):
    """The key file is missing, unreadable or not a dex key file."""


def write_key(path: str | Path, keys: Keypair) -> None:
    """Create `path` (never replace one) readable by its owner only."""
    path = Path(path)
    doc = {"account": str(keys.account), "apiKey": keys.api_key, "privateKey": keys.private.hex()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; not replacing a key file") from None
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    assert (path.stat().st_mode & 0o777) == KEY_FILE_MODE


def load_key(path: str | Path) -> Keypair:
    """The key pair in a key file from `dex keys new` (or a bare 64-hex private key)."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    secret = text
    if text.startswith("{"):
        try:
            secret = json.loads(text).get("privateKey", "")
        except (ValueError, AttributeError):
            raise KeyFileError(f"{path}: not a dex key file") from None
    if not isinstance(secret, str) or len(secret) != PRIVATE_KEY_HEX_CHARS:
        raise KeyFileError(f"{path}: no private key ({PRIVATE_KEY_HEX_CHARS} hex characters) in it")
    try:
        return Keypair.from_private(bytes.fromhex(secret))
    except ValueError:
        raise KeyFileError(f"{path}: the private key is not hex") from None
