"""deploy/setup.sh, on a machine where it may not install: it stops at once and names what to install.

The machine is simulated by a PATH that holds only the few programs the script needs to decide, so
no system package, apt-get or Docker engine is visible to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "setup.sh"
# What root needs for the workspace disks hands makes; other users' hands do without them.
DISKS = ["e2fsprogs", "mount"] if os.geteuid() == 0 else []


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with bash, a Python that has venv, and the coreutils the script calls; nothing else."""
    for program in ("bash", "dirname", "id"):
        found = shutil.which(program)
        assert found, program
        (tmp_path / program).symlink_to(found)
    (tmp_path / "python3").symlink_to(sys.executable)
    return str(tmp_path)


def run_setup(target: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    # The bound only turns a hang into a failure; the script answers in well under a second.
    return subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "packages", "not_needed"),
    [
        ("test", ["redis-server", "docker-compose", "docker.io", "debootstrap", "procps", *DISKS], []),
        ("bench", ["redis-server", "docker.io", "debootstrap", "procps", *DISKS], ["docker-compose"]),
        ("run", ["docker.io", "debootstrap", *DISKS], ["redis-server", "docker-compose"]),
        ("up", ["docker.io", "debootstrap", *DISKS], ["redis-server", "docker-compose"]),
        # docker-compose.yml with images built offline: their base is bootstrapped like the sandbox's.
        ("compose", ["docker-compose", "docker.io", "debootstrap"], ["redis-server", *DISKS]),
    ],
)
def test_without_apt_it_stops_at_once_and_names_each_missing_package(
    bare_path: str, target: str, packages: list[str], not_needed: list[str]
) -> None:
    result = run_setup(target, bare_path)

    assert result.returncode == 1, result.stderr
    install_line = next(line for line in result.stderr.splitlines() if "apt-get install" in line)
    named = install_line.split("apt-get install", 1)[1].split()
    for package in packages:
        assert package in named
    for package in not_needed:
        assert package not in named


def test_a_target_whose_needs_are_met_succeeds(bare_path: str) -> None:
    result = run_setup("lint", bare_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_unknown_target_is_refused(bare_path: str) -> None:
    result = run_setup("deploy-to-prod", bare_path)

    assert result.returncode == 1
    assert "unknown target" in result.stderr
