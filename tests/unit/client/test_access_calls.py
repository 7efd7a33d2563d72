"""What the client puts on the wire for keys, tenants and the audit log, and how it sends its key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from loopd import AsyncClient, AuditQuery, Client, LoopdError, TenantQuotas

from tests.unit.client.fake_teams import FakeTeams, Key


@pytest.fixture
def teams() -> FakeTeams:
    return FakeTeams()


def client_of(teams: FakeTeams, key: Key | None = None, **options: str) -> Client:
    api_key = key.secret if key is not None else None
    return Client("http://loopd.test/", api_key=api_key, transport=teams.transport(), **options)  # type: ignore[arg-type]


def test_api_key_and_its_older_name_token_are_sent_as_a_bearer_header(teams: FakeTeams) -> None:
    key = teams.add_key()
    with Client("http://loopd.test", token=key.secret, transport=teams.transport()) as client:
        client.list_keys()
    with Client(
        "http://loopd.test", api_key=key.secret, token=key.secret, transport=teams.transport()
    ) as client:
        client.list_keys()
    assert [r.headers["authorization"] for r in teams.requests] == [f"Bearer {key.secret}"] * 2
    with pytest.raises(LoopdError) as raised:
        Client("http://loopd.test", api_key=key.secret, token="lk_other")
    assert raised.value.code == "two_keys"


def test_keys_are_made_listed_and_revoked(teams: FakeTeams) -> None:
    admin = teams.add_key()
    until = datetime(2027, 1, 1, tzinfo=UTC)
    with client_of(teams, admin) as client:
        created = client.create_key("ci", role="viewer", expires_at=until)
        listed = client.list_keys()
        revoked = client.revoke_key(created.id)
    assert json.loads(teams.requests[0].content) == {
        "name": "ci",
        "role": "viewer",
        "expires_at": "2027-01-01T00:00:00+00:00",
    }
    assert created.key.startswith("lk_") and created.key not in repr(created)
    assert [k.id for k in listed] == [created.id, admin.id]
    assert not hasattr(listed[0], "key")
    assert (teams.requests[-1].method, teams.requests[-1].url.path) == ("DELETE", f"/v1/keys/{created.id}")
    assert revoked.state(datetime.now(UTC)) == "revoked"


def test_an_expiry_without_a_time_zone_is_refused_before_sending(teams: FakeTeams) -> None:
    with client_of(teams, teams.add_key()) as client, pytest.raises(LoopdError) as raised:
        client.create_key("ci", expires_at=datetime(2027, 1, 1))
    assert raised.value.code == "invalid_expiry" and teams.requests == []


def test_tenants_are_created_with_quotas_read_updated_and_given_keys(teams: FakeTeams) -> None:
    with client_of(teams, teams.add_key()) as client:
        created = client.create_tenant("acme", name="Acme", quotas=TenantQuotas(max_running_runs=2))
        assert created.admin_key.role == "admin" and created.admin_key.key.startswith("lk_")
        client.update_tenant("acme", quotas={"max_sandboxes": 3, "monthly_tokens": None})
        found = client.get_tenant("acme")
        extra = client.create_tenant_key("acme", "acme ops", role="member")
        tenants = client.list_tenants()
        with pytest.raises(LoopdError) as raised:
            client.update_tenant("acme")
    assert json.loads(teams.requests[0].content) == {
        "id": "acme",
        "name": "Acme",
        "quotas": {"max_running_runs": 2},
    }
    assert (teams.requests[1].method, json.loads(teams.requests[1].content)) == (
        "PATCH",
        {"quotas": {"max_sandboxes": 3}},
    )
    assert found.quotas.max_sandboxes == 3 and found.quotas.max_running_runs is None
    assert teams.requests[3].url.path == "/v1/tenants/acme/keys" and extra.tenant == "acme"
    assert {t.id for t in tenants} == {"default", "acme"}
    assert raised.value.code == "nothing_to_update"


def test_the_audit_log_is_read_with_filters_and_paged_to_the_end(teams: FakeTeams) -> None:
    teams.audit = [{"action": "run.created", "object_type": "run", "object_id": f"run_{n}"} for n in range(5)]
    with client_of(teams, teams.add_key()) as client:
        page = client.read_audit(AuditQuery(action="run.created", object_id="run_1", limit=2))
        every = list(client.iter_audit(AuditQuery(limit=2)))
    first = teams.requests[0].url.params
    assert dict(first) == {"action": "run.created", "object_id": "run_1", "after": "0", "limit": "2"}
    assert page.next_after == 2
    assert [e.object_id for e in every] == [f"run_{n}" for n in range(5)]
    assert [r.url.params["after"] for r in teams.requests[1:]] == ["0", "2", "4"]


async def test_the_async_client_makes_the_same_calls(teams: FakeTeams) -> None:
    admin = teams.add_key()
    teams.audit = [{"action": "run.created", "object_type": "run", "object_id": f"run_{n}"} for n in range(3)]

    async def answer(request: httpx.Request) -> httpx.Response:
        return teams.handle(request)

    transport = httpx.MockTransport(answer)
    async with AsyncClient("http://loopd.test", api_key=admin.secret, transport=transport) as client:
        created = await client.create_key("ci")
        assert created.role == "member"
        assert [k.id for k in await client.list_keys()] == [created.id, admin.id]
        await client.revoke_key(created.id)
        tenant = await client.create_tenant("acme")
        await client.update_tenant("acme", name="Acme")
        assert (await client.get_tenant("acme")).name == "Acme"
        assert len(await client.list_tenants()) == 2
        assert (await client.create_tenant_key("acme", "ops")).tenant == "acme"
        entries = [e async for e in client.iter_audit(AuditQuery(limit=2))]
    assert tenant.admin_key.tenant == "acme"
    assert [e.action for e in entries][:3] == ["run.created"] * 3
    assert {r.headers["authorization"] for r in teams.requests} == {f"Bearer {admin.secret}"}
