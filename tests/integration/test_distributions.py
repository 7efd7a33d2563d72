"""The two distributions, built as wheels: `loopd` (client and CLI) ships only the client and needs only
its HTTP and terminal libraries; `loopd-server` ships the services and needs that same client."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CLIENT_NEEDS = {"httpx", "httpx-sse", "pydantic", "pyyaml", "rich", "typer"}
SERVER_ONLY = {
    "alembic",
    "docker",
    "fastapi",
    "grpcio",
    "sqlalchemy",
    "uvloop",
    "uvicorn",
    "redis",
    "psycopg",
}
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    # Built from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            source,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def top_level(wheel: zipfile.ZipFile) -> set[str]:
    return {
        name.partition("/")[0]
        for name in wheel.namelist()
        if not name.partition("/")[0].endswith(".dist-info")
    }


def requirements(wheel: zipfile.ZipFile) -> list[Requirement]:
    (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    parsed = Parser().parsestr(wheel.read(metadata).decode())
    return [Requirement(line) for line in parsed.get_all("Requires-Dist") or []]


def scripts(wheel: zipfile.ZipFile) -> str:
    (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    return wheel.read(entry_points).decode()


def test_the_client_wheel_ships_only_the_client_and_needs_no_server_library(tmp_path: Path) -> None:
    source = tmp_path / "client"
    shutil.copytree(ROOT / "client", source, ignore=IGNORED)
    wheel = build_wheel(source, tmp_path / "dist")
    assert top_level(wheel) == {"loopd"}
    needs = {req.name.lower() for req in requirements(wheel) if req.marker is None}
    assert needs == CLIENT_NEEDS
    assert "loopd = loopd.cli:app" in scripts(wheel)
    assert "loopd-server" not in scripts(wheel)


def test_the_server_wheel_ships_the_services_and_needs_the_client_of_its_version(tmp_path: Path) -> None:
    source = tmp_path / "server"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "services", source / "services", ignore=IGNORED)
    wheel = build_wheel(source, tmp_path / "dist")
    assert top_level(wheel) == {"services"}
    assert "services/core/db/migrations/script.py.mako" in wheel.namelist()
    needs = {req.name.lower(): req for req in requirements(wheel) if req.marker is None}
    client_version = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]["version"]
    assert str(needs["loopd"].specifier) == f"=={client_version}"
    assert set(needs) >= SERVER_ONLY
    assert "loopd-server = services.cli:app" in scripts(wheel)
