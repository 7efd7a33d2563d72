"""The tool schemas the brain offers the model are valid JSON Schemas, importable without Docker."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import pytest

from services.hands.contract.tools import TOOL_SCHEMAS, TOOLSET_SCHEMAS, input_schemas


def test_loopd_tools_and_the_toolset_tools_are_described() -> None:
    loopd = {"bash", "read_file", "write_file", "edit_file", "list_files"}
    toolset = {"bash", "read", "write", "edit", "glob", "grep"}
    assert set(TOOL_SCHEMAS) == loopd | toolset
    assert set(TOOLSET_SCHEMAS) == toolset
    for name, tool in [*TOOL_SCHEMAS.items(), *TOOLSET_SCHEMAS.items()]:
        assert tool["description"], name
        jsonschema.Draft202012Validator.check_schema(tool["input_schema"])


@pytest.mark.parametrize(
    ("args", "shapes_that_fit"),
    [
        ({"command": "ls", "timeout": 5}, 1),
        ({"command": "ls", "timeout_ms": 5000}, 1),
        ({"restart": True}, 1),
        ({"command": "ls"}, 2),
        ({"command": "ls", "timeout": 5, "timeout_ms": 5}, 0),
    ],
)
def test_bash_takes_loopd_input_or_the_toolsets(args: dict[str, object], shapes_that_fit: int) -> None:
    fits = [not list(jsonschema.Draft202012Validator(s).iter_errors(args)) for s in input_schemas("bash")]

    assert sum(fits) == shapes_that_fit


@pytest.mark.parametrize(
    ("tool", "args", "valid"),
    [
        ("bash", {"command": "ls"}, True),
        ("bash", {"command": "ls", "timeout": 5}, True),
        ("bash", {"command": "ls", "timeout": 0}, False),
        ("bash", {}, False),
        ("write_file", {"path": "a", "content": ""}, True),
        ("edit_file", {"path": "a", "old_string": "", "new_string": "x"}, False),
        ("list_files", {}, True),
        ("read_file", {"path": "a", "extra": 1}, False),
    ],
)
def test_schemas_accept_and_reject_inputs(tool: str, args: dict[str, object], valid: bool) -> None:
    errors = list(jsonschema.Draft202012Validator(TOOL_SCHEMAS[tool]["input_schema"]).iter_errors(args))

    assert (not errors) is valid


def test_the_brain_can_import_the_client_and_schemas_without_the_docker_sdk() -> None:
    code = (
        "import sys, services.hands.contract.client, services.hands.contract.tools; "
        "print('docker' in sys.modules)"
    )

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "False"
