"""Every console script that a pyproject.toml declares is installed, resolves, and answers `--help`."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMANDS = {"gateway", "brain", "hands", "up", "demo", "migrate", "wait-for-schema"}


def console_scripts() -> dict[str, str]:
    """name -> "module:attribute", from every pyproject.toml of the repository."""
    found: dict[str, str] = {}
    for pyproject in sorted(ROOT.glob("**/pyproject.toml")):
        if ".venv" in pyproject.parts:
            continue
        found.update(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return found


def entry_point(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def installed(name: str) -> Path:
    script = Path(sys.executable).parent / name
    assert script.exists(), f"{name} is not installed beside {sys.executable} (make install)"
    return script


def help_of(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(installed(argv[0])), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def subcommands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, sub in getattr(command, "commands", {}).items():
        yield (*path, name)
        yield from subcommands(sub, (*path, name))


def test_the_server_and_the_client_both_have_a_script() -> None:
    assert {"loopd", "loopd-server"} <= set(console_scripts())


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_each_script_answers_help(name: str) -> None:
    answered = help_of(name)
    assert answered.returncode == 0, answered.stderr
    assert "Usage" in answered.stdout


def test_loopd_server_has_one_command_per_role_and_the_local_stack() -> None:
    app = typer.main.get_command(entry_point(console_scripts()["loopd-server"]))
    assert isinstance(app, TyperGroup)
    assert set(app.commands) == SERVER_COMMANDS


@pytest.mark.parametrize("command", sorted(SERVER_COMMANDS))
def test_each_loopd_server_command_answers_help(command: str) -> None:
    answered = help_of("loopd-server", command)
    assert answered.returncode == 0, answered.stderr
    assert f"loopd-server {command}" in answered.stdout


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_every_subcommand_of_each_script_answers_help(name: str) -> None:
    app = entry_point(console_scripts()[name])
    paths = list(subcommands(typer.main.get_command(app)))
    assert paths
    for path in paths:
        answered = CliRunner().invoke(app, [*path, "--help"])
        assert answered.exit_code == 0, f"{name} {' '.join(path)}: {answered.output}"
