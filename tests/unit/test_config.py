"""The cluster config's checks that guard security."""

from __future__ import annotations

from pathlib import Path

import pytest

from dex.config import ConfigError, load_cluster

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, *, host: str, extra: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[cluster]\nname = "t"\nmarkets = "{(REPO / "configs" / "markets.toml").as_posix()}"\n{extra}\n'
        f'[[nodes]]\nid = "n1"\nraft = "{host}:7001"\napi = "{host}:8001"\n'
    )
    return path


def test_signatures_are_verified_by_default(tmp_path: Path) -> None:
    assert load_cluster(_config(tmp_path, host="127.0.0.1", extra="")).verify_signatures is True


def test_skipping_signature_checks_is_allowed_on_loopback_only(tmp_path: Path) -> None:
    assert load_cluster(_config(tmp_path, host="127.0.0.1", extra="verify_signatures = false")).verify_signatures is False
    with pytest.raises(ConfigError, match="loopback only"):
        load_cluster(_config(tmp_path, host="10.0.0.5", extra="verify_signatures = false"))
