"""The CLI's config file: where it is, how gateway URLs are filed, and that it stays private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from loopd import LoopdError
from loopd.config import ConfigFile, default_path, gateway_key


def test_the_config_file_is_loopd_config_else_xdg_else_home(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert default_path({"HOME": home}) == tmp_path / "home/.config/loopd/config.json"
    assert default_path({"HOME": home, "XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/loopd/config.json")
    # A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    assert (
        default_path({"HOME": home, "XDG_CONFIG_HOME": "rel"}) == tmp_path / "home/.config/loopd/config.json"
    )
    chosen = {"HOME": home, "XDG_CONFIG_HOME": "/xdg", "LOOPD_CONFIG": "/etc/loopd.json"}
    assert default_path(chosen) == Path("/etc/loopd.json")


@pytest.mark.parametrize(
    ("url", "filed"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTP://LocalHost:8080", "http://127.0.0.1:8080"),
        ("http://0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("https://loopd.example.com/", "https://loopd.example.com"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_gateway_urls_are_filed_in_one_form(url: str, filed: str) -> None:
    assert gateway_key(url) == filed


def test_keys_are_kept_per_gateway_in_a_private_file(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path / "loopd" / "config.json")
    assert config.api_key("http://127.0.0.1:8080") is None
    config.store_key("http://127.0.0.1:8080/", "lk_local")
    config.store_key("https://loopd.example.com", "lk_remote")
    assert config.api_key("http://localhost:8080") == "lk_local"
    assert config.api_key("https://loopd.example.com/") == "lk_remote"
    assert stat.S_IMODE(config.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in config.path.parent.iterdir()] == ["config.json"]

    config.store_key("http://127.0.0.1:8080", "lk_newer")
    assert config.api_key("http://127.0.0.1:8080") == "lk_newer"
    assert config.forget("http://127.0.0.1:8080") is True
    assert config.forget("http://127.0.0.1:8080") is False
    assert config.api_key("https://loopd.example.com") == "lk_remote"


def test_what_else_the_file_holds_is_kept(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path / "config.json")
    config.path.write_text('{"theme": "dark", "gateways": {"http://a": {"api_key": "lk_a", "note": "x"}}}')
    config.store_key("http://a", "lk_b")
    assert config.path.read_text().count('"theme": "dark"') == 1
    assert '"note": "x"' in config.path.read_text()


@pytest.mark.parametrize("text", ["not json", "[]", '{"gateways": []}'])
def test_a_broken_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    config = ConfigFile(tmp_path / "config.json")
    config.path.write_text(text)
    with pytest.raises(LoopdError) as raised:
        config.api_key("http://a")
    assert raised.value.code == "invalid_config" and str(config.path) in raised.value.message
