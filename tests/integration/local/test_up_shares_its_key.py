"""`loopd-server up` on a fresh data folder prints its admin key once and files it in the CLI's config
for its URL, so that `loopd runs` on the same machine works with no key given."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopd.config import ConfigFile

from harness.servers import server_root
from harness.waiting import eventually_sync
from services.local.main import share_admin_key
from services.local.postgres import free_port
from services.local.stack import ADMIN_KEY_FILE

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent


@pytest.fixture
def data_root() -> Iterator[Path]:
    with server_root("loopd-local-up-") as root:
        yield root


def test_up_files_its_new_key_for_the_cli_which_then_needs_no_key(data_root: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = ConfigFile(tmp_path / "config.json")
    config.store_key(url, "lk_of_a_stack_that_is_gone")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("LOOPD_API_KEY", "LOOPD_TOKEN")},
        "LOOPD_DATA_DIR": str(data_root / "data"),
        "LOOPD_PORT": str(port),
        "LOOPD_CONFIG": str(config.path),
        "LOOPD_HANDS_WARM_POOL": "0",
        "LOOPD_STACK_ID": f"test-{secrets.token_hex(4)}",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        stack = subprocess.Popen(
            [str(BIN / "loopd-server"), "up"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        eventually_sync(lambda: "finds it in" in log.read_text(), timeout=180, interval=0.2)
        key = (data_root / "data" / ADMIN_KEY_FILE).read_text().strip()
        assert config.api_key(url) == key
        assert log.read_text().count(key) == 1

        listed = subprocess.run(
            [str(BIN / "loopd"), "runs", "--json"],
            capture_output=True, text=True, timeout=60, env={**env, "LOOPD_URL": url},
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr + log.read_text()
        assert json.loads(listed.stdout)["data"] == []
    finally:
        stack.terminate()
        stack.wait(timeout=60)


def test_a_key_the_config_holds_is_kept_unless_the_stack_is_new(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path / "config.json")
    url = "http://127.0.0.1:8080"
    assert share_admin_key(config, url, "lk_first", new=False) is True
    assert share_admin_key(config, url, "lk_stack", new=False) is False
    assert config.api_key(url) == "lk_first"
    assert share_admin_key(config, url, "lk_stack", new=True) is True
    assert config.api_key(url) == "lk_stack"
