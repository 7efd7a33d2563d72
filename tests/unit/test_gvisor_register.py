"""deploy/gvisor/register.py merges loopd's runsc runtime into a Docker engine's daemon.json and nothing
else: other settings and runtimes stay, an entry that already serves is kept, a broken file is refused."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "gvisor" / "register.py"
RUNSC = "/usr/bin/runsc"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("register", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merge(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "merge", str(config), RUNSC],
        capture_output=True,
        text=True,
        check=False,
    )


def test_it_adds_runsc_beside_what_the_file_has(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    other = {"path": "/usr/local/bin/crun"}
    config.write_text(json.dumps({"log-level": "warn", "runtimes": {"crun": other}}))
    config.chmod(0o600)

    result = merge(config)

    assert result.returncode == 0 and result.stdout == "changed\n", result.stderr
    written = json.loads(config.read_text())
    assert written["log-level"] == "warn"
    assert written["runtimes"]["crun"] == other
    assert written["runtimes"]["runsc"] == {
        "path": RUNSC,
        "runtimeArgs": ["--platform=ptrace", "--host-uds=open", "--network=none"],
    }
    assert config.stat().st_mode & 0o777 == 0o600


def test_a_missing_or_empty_file_gets_only_the_runtime(tmp_path: Path) -> None:
    config = tmp_path / "docker" / "daemon.json"

    assert merge(config).stdout == "changed\n"
    assert list(json.loads(config.read_text())) == ["runtimes"]


def test_a_second_merge_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    merge(config)
    before = config.read_text()

    assert merge(config).stdout == "unchanged\n"
    assert config.read_text() == before


def test_an_entry_with_the_needed_flags_is_its_owners(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    theirs = {"path": RUNSC, "runtimeArgs": ["--platform=kvm", "--network=none", "--host-uds=open"]}
    config.write_text(json.dumps({"runtimes": {"runsc": theirs}}))

    assert merge(config).stdout == "unchanged\n"
    assert json.loads(config.read_text())["runtimes"]["runsc"] == theirs


def test_an_entry_without_them_is_replaced(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"runsc": {"path": RUNSC}}}))

    assert merge(config).stdout == "changed\n"
    assert "--host-uds=open" in json.loads(config.read_text())["runtimes"]["runsc"]["runtimeArgs"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"runtimes": []}'])
def test_a_file_it_cannot_read_as_settings_is_left_as_it_is(tmp_path: Path, text: str) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(text)

    result = merge(config)

    assert result.returncode == 1
    assert str(config) in result.stderr
    assert config.read_text() == text


@pytest.mark.parametrize(
    ("runtimes", "serves"),
    [
        ({"runc": {"path": "runc"}}, False),
        ({"runsc": {"path": RUNSC, "runtimeArgs": ["--platform=ptrace"]}}, False),
        ({"runsc": {"path": "/opt/runsc", "runtimeArgs": ["--network=none", "--host-uds=open"]}}, True),
    ],
)
def test_check_tells_whether_the_engines_runtimes_serve(runtimes: dict[str, object], serves: bool) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "check"],
        input=json.dumps(runtimes).encode(),
        capture_output=True,
        check=False,
    )

    assert (result.returncode == 0) is serves
    assert load().serves(runtimes.get("runsc")) is serves
