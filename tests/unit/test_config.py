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


def test_a_misspelt_key_is_refused_naming_the_key_and_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, host="127.0.0.1", extra="block_intervall_ms = 2")
    with pytest.raises(ConfigError) as e:
        load_cluster(path)
    message = str(e.value)
    assert "'block_intervall_ms'" in message and str(path) in message and "[cluster]" in message
    assert "did you mean 'block_interval_ms'?" in message


def test_an_unknown_key_in_a_node_entry_or_an_unknown_table_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, host="127.0.0.1", extra="")
    path.write_text(path.read_text() + 'apii = "127.0.0.1:8002"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'apii' in \[\[nodes\]\] #1"):
        load_cluster(path)
    path = _config(tmp_path, host="127.0.0.1", extra="")
    path.write_text(path.read_text() + "[clustr]\nfaucet = true\n")
    with pytest.raises(ConfigError, match="unknown table 'clustr'"):
        load_cluster(path)


def test_a_value_out_of_bounds_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[cluster\] of .*c\.toml: block_commands_max: .*less than or equal to 4096"):
        load_cluster(_config(tmp_path, host="127.0.0.1", extra="block_commands_max = 5000"))


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, host="127.0.0.1", extra="block_interval_ms = 7\nfaucet = true")
    cfg = load_cluster(path)
    assert (cfg.block_interval_ms, cfg.faucet, cfg.store, cfg.database_url) == (7, True, True, None)
    monkeypatch.setenv("DEX_BLOCK_INTERVAL_MS", "2")
    monkeypatch.setenv("DEX_FAUCET", "false")
    monkeypatch.setenv("DEX_STORE", "0")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    cfg = load_cluster(path)
    assert (cfg.block_interval_ms, cfg.faucet, cfg.store, cfg.database_url) == (2, False, False, "sqlite:///x.db")
    monkeypatch.setenv("DEX_BLOCK_INTERVAL_MS", "fast")
    with pytest.raises(ConfigError, match="environment variable DEX_BLOCK_INTERVAL_MS: block_interval_ms: .*integer"):
        load_cluster(path)


def test_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_cluster(_config(tmp_path, host="127.0.0.1", extra=""))
    assert cfg.name == "t" and cfg.block_interval_ms == 5 and cfg.faucet is False
    assert cfg.data_dir == (tmp_path / ".." / "var" / "c").resolve()
    assert cfg.secret_file == cfg.data_dir / "cluster.secret"
    assert cfg.node("n1").api_url == "http://127.0.0.1:8001"
