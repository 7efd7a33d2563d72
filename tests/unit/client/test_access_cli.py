"""`loopd keys`, `loopd tenants`, `loopd audit`, `loopd login|logout`, and where the CLI finds its key,
against an in-memory gateway that checks keys and roles as the real one does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import loopd.cli_context
import pytest
from loopd import Client
from loopd.access_cli import expiry
from loopd.cli import app
from loopd.config import ConfigFile
from typer.testing import CliRunner

from tests.unit.client.fake_teams import FakeTeams, Key

URL = "http://loopd.test:8080"


@pytest.fixture
def teams(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTeams]:
    gateway = FakeTeams()

    def make_client(url: str, *, api_key: str | None = None) -> Client:
        return Client(url, api_key=api_key, transport=gateway.transport())

    monkeypatch.setattr(loopd.cli_context, "Client", make_client)
    yield gateway


@pytest.fixture
def config(tmp_path: Path) -> ConfigFile:
    return ConfigFile(tmp_path / "config" / "loopd.json")


def invoke(config: ConfigFile, *args: str, key: Key | None = None, **env: str) -> Any:
    options = ["--url", URL, "--config", str(config.path)]
    if key is not None:
        options += ["--api-key", key.secret]
    return CliRunner().invoke(app, [*options, *args], env=env)


def sent_key(teams: FakeTeams) -> str:
    return str(teams.requests[-1].headers.get("authorization", ""))


def test_the_key_comes_from_the_option_then_the_environment_then_the_config_file(
    teams: FakeTeams, config: ConfigFile
) -> None:
    option, variable, old_variable, filed = (teams.add_key() for _ in range(4))
    config.store_key(URL, filed.secret)

    assert invoke(config, "runs").exit_code == 0
    assert sent_key(teams) == f"Bearer {filed.secret}"
    assert invoke(config, "runs", LOOPD_TOKEN=old_variable.secret).exit_code == 0
    assert sent_key(teams) == f"Bearer {old_variable.secret}"
    assert (
        invoke(config, "runs", LOOPD_API_KEY=variable.secret, LOOPD_TOKEN=old_variable.secret).exit_code == 0
    )
    assert sent_key(teams) == f"Bearer {variable.secret}"
    assert invoke(config, "runs", key=option, LOOPD_API_KEY=variable.secret).exit_code == 0
    assert sent_key(teams) == f"Bearer {option.secret}"


def test_the_config_file_key_is_only_for_its_own_gateway(teams: FakeTeams, config: ConfigFile) -> None:
    config.store_key("http://elsewhere:8080", teams.add_key().secret)
    refused = invoke(config, "runs")
    assert refused.exit_code == 2
    assert "error missing_api_key: this needs an API key" in refused.stderr
    assert "loopd login" in refused.stderr and "Traceback" not in refused.stderr


def test_keys_create_prints_only_the_key_on_stdout_and_what_it_is_on_stderr(
    teams: FakeTeams, config: ConfigFile
) -> None:
    admin = teams.add_key("admin")
    made = invoke(
        config, "keys", "create", "ci-nightly", "--role", "viewer", "--expires-in", "30d", key=admin
    )
    assert made.exit_code == 0, made.output
    created = teams.keys[-1]
    assert made.stdout == created.secret + "\n"
    assert f"{created.id} (viewer of tenant default): shown this once" in made.stderr
    body = json.loads(teams.requests[-1].content)
    assert (body["name"], body["role"]) == ("ci-nightly", "viewer")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)


def test_keys_list_shows_prefixes_and_states_but_never_a_key(teams: FakeTeams, config: ConfigFile) -> None:
    admin = teams.add_key("admin")
    member = teams.add_key("member")
    assert invoke(config, "keys", "revoke", member.id, key=admin).stdout == f"{member.id} revoked\n"
    listed = invoke(config, "keys", "list", key=admin, COLUMNS="200")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if member.id in line)
    assert "member" in row and "revoked" in row and member.secret[:11] in row
    assert member.secret not in listed.stdout and admin.secret not in listed.stdout
    as_json = json.loads(invoke(config, "keys", "list", "--json", key=admin).stdout)
    assert {key["id"] for key in as_json["data"]} == {admin.id, member.id}


def test_a_revoked_key_is_refused_with_its_code_and_no_traceback(
    teams: FakeTeams, config: ConfigFile
) -> None:
    admin = teams.add_key("admin")
    member = teams.add_key("member")
    invoke(config, "keys", "revoke", member.id, key=admin)
    refused = invoke(config, "runs", key=member)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "error api_key_revoked: the API key is revoked"


@pytest.mark.parametrize(
    ("role", "args", "line"),
    [
        (
            "member",
            ("keys", "list"),
            "error forbidden: this needs a key with the admin role; this key is a member",
        ),
        ("admin", ("keys", "revoke", "key_nope"), "error key_not_found: key key_nope not found"),
    ],
)
def test_403_and_404_print_the_code_and_message_and_exit_2(
    teams: FakeTeams, config: ConfigFile, role: str, args: tuple[str, ...], line: str
) -> None:
    refused = invoke(config, *args, key=teams.add_key(role))
    assert (refused.exit_code, refused.stderr.strip()) == (2, line)
    assert refused.stdout == ""


def test_tenants_create_prints_the_new_admin_key_once(teams: FakeTeams, config: ConfigFile) -> None:
    root = teams.add_key("admin")
    made = invoke(config, "tenants", "create", "acme", "--name", "Acme", "--max-running-runs", "2", key=root)
    assert made.exit_code == 0, made.output
    first = teams.keys[-1]
    assert (first.tenant, first.role) == ("acme", "admin")
    assert made.stdout == first.secret + "\n"
    assert "tenant acme created; its admin key" in made.stderr
    assert json.loads(teams.requests[-1].content) == {
        "id": "acme",
        "name": "Acme",
        "quotas": {"max_running_runs": 2},
    }
    shown = invoke(config, "tenants", "show", "acme", key=root)
    assert re.search(r"max_running_runs\s+2\s*\n", shown.stdout) and first.secret not in shown.stdout
    assert "acme" in invoke(config, "tenants", "list", key=root).stdout


def test_tenants_update_keeps_the_quotas_it_does_not_name(teams: FakeTeams, config: ConfigFile) -> None:
    root = teams.add_key("admin")
    teams.tenants["acme"] = {
        "id": "acme",
        "name": "Acme",
        "quotas": {"max_running_runs": 2, "monthly_tokens": 5},
    }
    updated = invoke(
        config, "tenants", "update", "acme", "--max-sandboxes", "3", "--unset", "monthly-tokens", key=root
    )
    assert updated.exit_code == 0, updated.output
    assert teams.bodies_of("PATCH") == [{"quotas": {"max_running_runs": 2, "max_sandboxes": 3}}]
    renamed = invoke(config, "tenants", "update", "acme", "--name", "Acme Corp", key=root)
    assert renamed.exit_code == 0 and teams.bodies_of("PATCH")[-1] == {"name": "Acme Corp"}
    nothing = invoke(config, "tenants", "update", "acme", key=root)
    assert (nothing.exit_code, nothing.stderr.split(":")[0]) == (2, "error nothing_to_update")
    unknown = invoke(config, "tenants", "update", "acme", "--unset", "speed", key=root)
    assert unknown.exit_code == 2 and "no quota 'speed'" in unknown.output


def test_another_tenants_admin_cannot_see_or_make_tenants(teams: FakeTeams, config: ConfigFile) -> None:
    teams.tenants["acme"] = {"id": "acme", "name": "Acme", "quotas": {}}
    other = teams.add_key("admin", tenant="acme")
    assert invoke(config, "tenants", "show", "acme", key=other).exit_code == 0
    hidden = invoke(config, "tenants", "show", "default", key=other)
    assert (hidden.exit_code, hidden.stderr.strip()) == (
        2,
        "error tenant_not_found: tenant default not found",
    )
    refused = invoke(config, "tenants", "create", "evil", key=other)
    assert refused.exit_code == 2 and refused.stderr.startswith("error forbidden:")


def test_tenants_key_makes_a_key_of_another_tenant(teams: FakeTeams, config: ConfigFile) -> None:
    root = teams.add_key("admin")
    teams.tenants["acme"] = {"id": "acme", "name": "Acme", "quotas": {}}
    made = invoke(config, "tenants", "key", "acme", "acme admin 2", "--role", "admin", key=root)
    assert made.exit_code == 0, made.output
    assert (teams.keys[-1].tenant, teams.keys[-1].role) == ("acme", "admin")
    assert made.stdout == teams.keys[-1].secret + "\n"


def test_audit_reads_one_page_or_every_page(teams: FakeTeams, config: ConfigFile) -> None:
    admin = teams.add_key("admin")
    teams.audit = [
        {"action": "run.cancelled", "object_type": "run", "object_id": f"run_{n}"} for n in range(5)
    ]
    page = invoke(config, "audit", "--limit", "2", key=admin, COLUMNS="200")
    assert page.exit_code == 0, page.output
    assert "run_1" in page.stdout and "run_2" not in page.stdout
    assert "add --after 2" in page.stderr
    every = json.loads(invoke(config, "audit", "--limit", "2", "--all", "--json", key=admin).stdout)
    assert [entry["object_id"] for entry in every["data"]] == [f"run_{n}" for n in range(5)]
    assert [r.url.params["after"] for r in teams.requests[-3:]] == ["0", "2", "4"]
    invoke(config, "audit", "--action", "key.created", "--object-type", "key", key=admin)
    assert teams.requests[-1].url.params["action"] == "key.created"
    assert teams.requests[-1].url.params["object_type"] == "key"


def test_login_checks_the_key_and_files_it_for_the_gateway_and_logout_removes_it(
    teams: FakeTeams, config: ConfigFile
) -> None:
    member = teams.add_key("member")
    wrong = CliRunner().invoke(
        app, ["--url", URL, "--config", str(config.path), "login"], input="lk_wrong_key_000000\n"
    )
    assert wrong.exit_code == 2 and "invalid_api_key" in wrong.stderr
    assert not config.path.exists()

    logged_in = CliRunner().invoke(
        app, ["--url", URL + "/", "--config", str(config.path), "login"], input=member.secret + "\n"
    )
    assert logged_in.exit_code == 0, logged_in.output
    assert member.secret not in logged_in.stdout
    assert config.api_key(URL) == member.secret
    assert invoke(config, "runs").exit_code == 0 and sent_key(teams) == f"Bearer {member.secret}"

    assert "removed" in invoke(config, "logout").stdout
    assert config.api_key(URL) is None
    assert "there was no" in invoke(config, "logout").stdout


def test_expiry_reads_durations_and_dates() -> None:
    assert expiry(None, None) is None
    soon = expiry(None, "12h")
    assert soon is not None and timedelta(hours=11) < soon - datetime.now(UTC) <= timedelta(hours=12)
    assert expiry("2027-01-01T00:00:00Z", None) == datetime(2027, 1, 1, tzinfo=UTC)
    local = expiry("2027-01-01", None)
    assert local is not None and local.tzinfo is not None
