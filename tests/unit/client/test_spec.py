"""Agent spec files and `key=value` options become request bodies, or clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopd.errors import SpecError
from loopd.spec import load_agent_spec, parse_metadata, to_yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "agents"


def write(tmp_path: Path, text: str, name: str = "coder.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_spec_file_loads_as_a_dict_named_after_the_file_by_default(tmp_path: Path) -> None:
    spec = load_agent_spec(write(tmp_path, "model: scripted\ntools: [bash]\nscript:\n  - text: hi\n"))
    assert spec == {"model": "scripted", "tools": ["bash"], "script": [{"text": "hi"}], "name": "coder"}


def test_an_explicit_name_is_kept(tmp_path: Path) -> None:
    assert load_agent_spec(write(tmp_path, "name: mine\nmodel: openai/gpt-4o-mini\n"))["name"] == "mine"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("model: [unclosed", "not valid YAML"),
        ("- model: scripted\n", "must be a mapping"),
        ("name: x\n", "`model` must be a non-empty string"),
        ("model: scripted\ntools: bash\n", "`tools` must be a list"),
        ("model: scripted\nlimits: 5\n", "`limits` must be a mapping"),
        ("model: scripted\nscript: {text: hi}\n", "`script` must be a list"),
        ("model: scripted\nscript:\n  - tool_calls: [{input: {}}]\n", "script turn 1"),
        ("model: scripted\npermissions: [bash]\n", "`permissions` must map tool names"),
        (
            "model: scripted\npermissions: {bash: Ask}\n",
            "permission for 'bash' must be one of allow, ask, deny",
        ),
        ("model: scripted\nclient_tools: {name: crm}\n", "`client_tools` must be a list"),
        (
            "model: scripted\nclient_tools: [{description: x}]\n",
            "client tool 1 must be a mapping with a `name`",
        ),
        (
            "model: scripted\nclient_tools: [{name: crm, input_schema: 5}]\n",
            "client tool crm: `input_schema`",
        ),
    ],
)
def test_malformed_specs_say_what_is_wrong(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(SpecError, match=r"coder\.yaml") as caught:
        load_agent_spec(write(tmp_path, text))
    assert complaint in caught.value.message
    assert caught.value.code == "invalid_spec"


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_agent_spec(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["demo.yaml", "openai.yaml"])
def test_the_example_agents_load(name: str) -> None:
    spec = load_agent_spec(EXAMPLES / name)
    assert spec["tools"] == ["bash", "write_file", "read_file", "edit_file", "list_files"]


def test_the_demo_agent_is_scripted_and_ends_with_a_summary() -> None:
    spec = load_agent_spec(EXAMPLES / "demo.yaml")
    assert spec["model"] == "scripted"
    used = {call["name"] for turn in spec["script"] for call in turn.get("tool_calls", [])}
    assert used == {"bash", "write_file", "read_file", "edit_file", "list_files"}
    assert "tool_calls" not in spec["script"][-1] and spec["script"][-1]["text"]


def test_metadata_pairs_become_a_dict() -> None:
    assert parse_metadata(["team=infra", "note=a=b", "team=core"]) == {"team": "core", "note": "a=b"}


@pytest.mark.parametrize("pair", ["novalue", "=x"])
def test_metadata_without_a_key_is_refused(pair: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_metadata([pair])
    assert caught.value.code == "invalid_metadata"


def test_a_spec_round_trips_through_yaml_with_readable_blocks(tmp_path: Path) -> None:
    spec = load_agent_spec(EXAMPLES / "demo.yaml")
    text = to_yaml(spec)
    assert "system: |" in text
    assert load_agent_spec(write(tmp_path, text)) == spec


def test_permissions_client_tools_and_brain_tools_pass_through(tmp_path: Path) -> None:
    text = """
model: openai/gpt-4o-mini
tools: [bash, ask_user, spawn_agent]
permissions: {bash: ask, spawn_agent: deny, crm_lookup: allow}
client_tools:
  - name: crm_lookup
    description: Find a customer by email.
    input_schema: {type: object, properties: {email: {type: string}}, required: [email]}
"""
    spec = load_agent_spec(write(tmp_path, text))
    assert spec["permissions"] == {"bash": "ask", "spawn_agent": "deny", "crm_lookup": "allow"}
    assert spec["client_tools"][0]["input_schema"]["required"] == ["email"]
