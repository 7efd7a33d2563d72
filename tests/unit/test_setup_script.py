"""deploy/setup.sh, on a machine where it may not install: it stops at once and names what to install.

The machine is simulated by a PATH that holds only the few programs the script needs to decide, so
no system package, apt-get or Docker engine is visible to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


def run_setup(target: str, path: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **env_vars}
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
    ("target", "packages", "not_needed", "env"),
    [
        (
            "test",
            ["redis-server", "docker-compose", "docker.io", "debootstrap", "procps", "runsc", *DISKS],
            [],
            {},
        ),
        (
            "bench",
            ["redis-server", "docker.io", "debootstrap", "procps", "runsc", *DISKS],
            ["docker-compose"],
            {},
        ),
        ("run", ["docker.io", "debootstrap", *DISKS], ["redis-server", "docker-compose", "runsc"], {}),
        ("up", ["docker.io", "debootstrap", *DISKS], ["redis-server", "docker-compose", "runsc"], {}),
        # gVisor for the local stack only when its sandboxes are to use it.
        ("run", ["docker.io", "runsc"], ["redis-server"], {"LOOPD_SANDBOX_RUNTIME": "runsc"}),
        ("up", ["docker.io", "runsc"], ["redis-server"], {"LOOPD_SANDBOX_RUNTIME": "runsc"}),
        ("gvisor", ["docker.io", "runsc", "gcc"], ["redis-server", "debootstrap"], {}),
        # docker-compose.yml with images built offline: their base is bootstrapped like the sandbox's.
        ("compose", ["docker-compose", "docker.io", "debootstrap"], ["redis-server", "runsc", *DISKS], {}),
    ],
)
def test_without_apt_it_stops_at_once_and_names_each_missing_package(
    bare_path: str, target: str, packages: list[str], not_needed: list[str], env: dict[str, str]
) -> None:
    result = run_setup(target, bare_path, **env)

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


# A stand-in for dockerd: on SIGHUP it takes the runtimes of its daemon.json, as dockerd does, and
# counts the reloads; `docker info` (fake_docker) answers with the runtimes it last took.
FAKE_DOCKERD = r"""
import json, signal, sys
from collections.abc import Iterator
from pathlib import Path
config, state = Path(sys.argv[1]), Path(sys.argv[2])
reloads = 0
def reload(*_):
    global reloads
    reloads += 1
    runtimes = json.loads(config.read_text()).get("runtimes", {})
    (state / "runtimes.json").write_text(json.dumps({"runc": {"path": "runc"}, **runtimes}))
    (state / "reloads").write_text(str(reloads))
signal.signal(signal.SIGHUP, reload)
(state / "runtimes.json").write_text(json.dumps({"runc": {"path": "runc"}}))
print("ready", flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def fake_engine(bare_path: str, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(PATH, daemon.json, state folder) of a fake Docker engine with runsc installed."""
    bin_dir = Path(bare_path)
    for program in ("cat", "seq", "sleep", "timeout", "mkdir", "mv"):
        found = shutil.which(program)
        assert found, program
        (bin_dir / program).symlink_to(found)
    state = tmp_path / "engine"
    state.mkdir()
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"log-level": "warn", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}))
    for name, body in {
        "docker": f'[ "$1" = info ] && cat {state}/runtimes.json',
        "dockerd": "exit 1",
        "runsc": "exit 0",
        # Writes what it is asked to build, as the compiler would.
        "cc": 'while [ "$1" != -o ]; do shift; done; echo shim > "$2"',
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    dockerd = subprocess.Popen(
        [sys.executable, "-c", FAKE_DOCKERD, str(config), str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert dockerd.stdout is not None and dockerd.stdout.readline() == "ready\n"
        (state / "docker.pid").write_text(str(dockerd.pid))
        yield bare_path, config, state
    finally:
        dockerd.kill()
        dockerd.wait()


def test_gvisor_registers_runsc_with_the_engine_once(fake_engine: tuple[str, Path, Path]) -> None:
    path, config, state = fake_engine
    env = {
        "LOOPD_DOCKER_CONFIG": str(config),
        "LOOPD_DOCKER_PIDFILE": str(state / "docker.pid"),
        "LOOPD_GVISOR_DIR": str(state / "gvisor"),
    }

    first = run_setup("gvisor", path, **env)
    second = run_setup("gvisor", path, **env)

    assert first.returncode == 0, first.stderr
    assert "registered runsc" in first.stderr
    written = json.loads(config.read_text())
    assert written["log-level"] == "warn"
    assert set(written["runtimes"]) == {"crun", "runsc"}
    assert "runsc" in json.loads((state / "runtimes.json").read_text())
    # The statx shim its sandboxes preload (deploy/gvisor/statx.c).
    assert (state / "gvisor" / "statx.so").read_text() == "shim\n"
    # The engine already has it: neither the file nor the engine is touched again.
    assert second.returncode == 0 and second.stderr == "", second.stderr
    assert (state / "reloads").read_text() == "1"


def test_gvisor_without_a_local_engine_to_reload_names_the_entry_to_add(
    fake_engine: tuple[str, Path, Path],
) -> None:
    path, config, state = fake_engine
    before = config.read_text()

    result = run_setup(
        "gvisor",
        path,
        LOOPD_DOCKER_CONFIG=str(config),
        LOOPD_DOCKER_PIDFILE=str(state / "none"),
        LOOPD_GVISOR_DIR=str(state / "gvisor"),
    )

    assert result.returncode == 1
    assert '"--host-uds=open"' in result.stderr and '"--network=none"' in result.stderr
    assert config.read_text() == before
