"""Every /v1 operation in the gateway's own /openapi.json refuses a request without a usable key: none
(401 missing_api_key), an unknown one, a revoked one and an expired one; and a viewer key on every
write (403). The key is checked before the body is read, so a write without one gets its 401 whatever
its body holds, on /v1 and on the Managed Agents API under /anthropic (in that API's envelope). A key
works as `Authorization: Bearer` and as `x-api-key`. Only /healthz, /readyz, /metrics and the OpenAPI
documents need no key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.core import keys
from services.core.keys import Role
from services.core.settings import Settings
from tests.integration.gateway.conftest import client_of
from tests.integration.gateway.operations import (
    NOWHERE,
    UNAUTHENTICATED,
    Operation,
    error_code,
    send,
    served_operations,
)


@pytest.fixture
async def walk(api: httpx.AsyncClient) -> list[Operation]:
    found, _ = await served_operations(api)
    assert len(found) > 20, "the walk found too few operations to be reading the real document"
    return found


async def _key(api: httpx.AsyncClient, role: Role) -> tuple[str, str]:
    """A new key of the root tenant: (id, key)."""
    created = await api.post("/v1/keys", json={"name": f"a {role} key", "role": role.value})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def _expired_key(settings: Settings, gateway_app: FastAPI) -> str:
    """The API refuses an expiry in the past, so the store makes this one."""
    engine = gateway_app.state.services.engine
    async with engine.begin() as conn:
        _, key = await keys.create_key(
            conn,
            tenant_id=settings.tenant,
            name="expired",
            role=Role.ADMIN,
            created_by=None,
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    return key


def _refused(response: httpx.Response, status: int, code: str) -> bool:
    return response.status_code == status and error_code(response) == code


def _bad_body(kind: str, settings: Settings) -> bytes:
    """A body each of the gateway's body checks refuses, once the key has passed."""
    if kind == "malformed":
        return b'{"name": "walk", '
    if kind == "oversized":
        return b'{"name": "' + b"a" * settings.max_body_bytes + b'"}'
    return b'{"name": "walk\\u0000"}'


# What a body of each kind gets with a usable key: from the JSON parser (only a route that reads a
# body), the body limit and the storable-input check.
_WITH_A_KEY = {
    "malformed": (400, "malformed_json"),
    "oversized": (413, "body_too_large"),
    "nul": (422, "unstorable_input"),
}


async def _send_raw(client: httpx.AsyncClient, method: str, url: str, body: bytes) -> httpx.Response:
    return await client.request(method, url, content=body, headers={"content-type": "application/json"})


async def test_only_the_probes_and_metrics_need_no_key(
    gateway_app: FastAPI, api: httpx.AsyncClient, walk: list[Operation]
) -> None:
    _, document = await served_operations(api)
    assert {path for path in document["paths"] if not path.startswith("/v1/")} == UNAUTHENTICATED
    async with client_of(gateway_app) as anonymous:
        assert (await anonymous.get("/openapi.json")).status_code == 200
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        # Not ready without a hands worker, but answered, without asking for a key.
        assert (await anonymous.get("/readyz")).status_code == 503
    # Every /v1 operation says in the document how it takes its key, for clients and generators.
    for operation in walk:
        security = document["paths"][operation.path][operation.method.lower()].get("security")
        assert security == [{"HTTPBearer": []}, {"APIKeyHeader": []}], operation.label


async def test_every_v1_operation_refuses_a_request_without_a_key(
    gateway_app: FastAPI, walk: list[Operation]
) -> None:
    async with client_of(gateway_app) as anonymous:
        wrong = []
        for operation in walk:
            response = await send(anonymous, operation)
            if not _refused(response, 401, "missing_api_key") or response.headers.get("WWW-Authenticate") != (
                "Bearer"
            ):
                wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", ["malformed", "oversized", "nul"])
async def test_a_write_without_a_key_is_refused_before_its_body_is_read(
    gateway_app: FastAPI, gateway_settings: Settings, walk: list[Operation], kind: str
) -> None:
    body = _bad_body(kind, gateway_settings)
    async with client_of(gateway_app) as anonymous:
        wrong = []
        for operation in walk:
            if not operation.writes:
                continue
            response = await _send_raw(anonymous, operation.method, operation.url(NOWHERE), body)
            if not _refused(response, 401, "missing_api_key") or response.headers.get("WWW-Authenticate") != (
                "Bearer"
            ):
                wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", ["malformed", "oversized", "nul"])
async def test_with_a_key_a_bad_body_is_still_refused_for_what_it_is(
    api: httpx.AsyncClient, gateway_settings: Settings, walk: list[Operation], kind: str
) -> None:
    body = _bad_body(kind, gateway_settings)
    status, code = _WITH_A_KEY[kind]
    wrong = []
    for operation in walk:
        if not operation.takes_body:
            continue
        response = await _send_raw(api, operation.method, operation.url(NOWHERE), body)
        if not _refused(response, status, code):
            wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


def _managed_error(response: httpx.Response) -> tuple[int, str | None, str | None]:
    """Status, error type and loopd code of an answer in the Managed Agents API's envelope."""
    body: Any = response.json()
    error = body.get("error", {}) if isinstance(body, dict) and body.get("type") == "error" else {}
    return response.status_code, error.get("type"), error.get("details", {}).get("error_code")


async def test_the_managed_agents_api_refuses_a_request_without_a_key_before_its_body(
    gateway_app: FastAPI, gateway_settings: Settings, api: httpx.AsyncClient
) -> None:
    document = await api.get("/anthropic/openapi.json")
    assert document.status_code == 200
    operations = [
        (method.upper(), "/anthropic" + re.sub(r"\{\w+\}", "nowhere", path), "requestBody" in spec)
        for path, methods in document.json()["paths"].items()
        for method, spec in methods.items()
    ]
    assert len(operations) > 10, "the walk found too few Managed Agents operations"
    # A resource loopd does not serve is refused for its missing key first, too.
    operations.append(("POST", "/anthropic/v1/vaults", True))
    wrong = []
    async with client_of(gateway_app) as anonymous:
        assert (await anonymous.get("/anthropic/openapi.json")).status_code == 200
        for method, url, _ in operations:
            bodies = (
                [b""]
                if method in ("GET", "DELETE")
                else [_bad_body(k, gateway_settings) for k in _WITH_A_KEY]
            )
            for body in bodies:
                response = await _send_raw(anonymous, method, url, body)
                if _managed_error(response) != (401, "authentication_error", "missing_api_key"):
                    wrong.append(f"{method} {url} {body[:20]!r}: {response.status_code} {response.text}")
    # With a key, each bad body is refused for what it is, in the API's envelope (where 422 is 400).
    for method, url, takes_body in operations[:-1]:
        for kind, (status, code) in _WITH_A_KEY.items() if takes_body else ():
            response = await _send_raw(api, method, url, _bad_body(kind, gateway_settings))
            if _managed_error(response) != (400 if status == 422 else status, "invalid_request_error", code):
                wrong.append(f"{method} {url} {kind} with a key: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(params=["unknown", "not_a_key", "revoked", "expired"])
async def unusable(
    request: pytest.FixtureRequest, api: httpx.AsyncClient, gateway_settings: Settings, gateway_app: FastAPI
) -> AsyncIterator[tuple[str, str]]:
    """A key the gateway must refuse, and the code it refuses it with."""
    if request.param == "unknown":
        yield keys.mint(), "invalid_api_key"
    elif request.param == "not_a_key":
        yield "Basic-credentials-of-another-service", "invalid_api_key"
    elif request.param == "revoked":
        key_id, key = await _key(api, Role.ADMIN)
        assert (await api.delete(f"/v1/keys/{key_id}")).status_code == 200
        yield key, "api_key_revoked"
    else:
        yield await _expired_key(gateway_settings, gateway_app), "api_key_expired"


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
async def test_every_v1_operation_refuses_a_key_it_cannot_use(
    gateway_app: FastAPI, walk: list[Operation], unusable: tuple[str, str], header: str
) -> None:
    key, code = unusable
    async with client_of(gateway_app, key, header=header) as refused:
        wrong = []
        for operation in walk:
            response = await send(refused, operation)
            if not _refused(response, 401, code):
                wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


async def test_a_viewer_key_reads_but_every_write_is_refused(
    gateway_app: FastAPI, api: httpx.AsyncClient, walk: list[Operation]
) -> None:
    _, viewer_key = await _key(api, Role.VIEWER)
    async with client_of(gateway_app, viewer_key) as viewer:
        wrong = []
        for operation in walk:
            response = await send(viewer, operation)
            if operation.writes or operation.admin_only:
                if not _refused(response, 403, "forbidden"):
                    wrong.append(f"{operation.label}: {response.status_code} {response.text}")
            elif response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{operation.label} (a read; listed in ADMIN_ONLY?): {response.text}")
    assert not wrong, "\n".join(wrong)


async def test_a_member_key_is_refused_what_only_admins_may_do(
    gateway_app: FastAPI, api: httpx.AsyncClient, walk: list[Operation]
) -> None:
    _, member_key = await _key(api, Role.MEMBER)
    async with client_of(gateway_app, member_key) as member:
        wrong = []
        for operation in walk:
            response = await send(member, operation)
            if operation.admin_only:
                if not _refused(response, 403, "forbidden"):
                    wrong.append(f"{operation.label}: {response.status_code} {response.text}")
            elif response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
async def test_an_admin_key_reaches_every_operation_in_either_header(
    gateway_app: FastAPI, gateway_settings: Settings, walk: list[Operation], header: str
) -> None:
    assert gateway_settings.admin_key is not None
    async with client_of(gateway_app, gateway_settings.admin_key.get_secret_value(), header=header) as admin:
        wrong = []
        for operation in walk:
            response = await send(admin, operation)
            if response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{operation.label}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)


async def test_a_key_is_refused_from_the_request_after_its_revocation(
    gateway_app: FastAPI, api: httpx.AsyncClient
) -> None:
    key_id, key = await _key(api, Role.MEMBER)
    async with client_of(gateway_app, key) as member:
        assert (await member.get("/v1/runs")).status_code == 200
        assert (await api.delete(f"/v1/keys/{key_id}")).status_code == 200
        assert _refused(await member.get("/v1/runs"), 401, "api_key_revoked")
    # Revoking again changes nothing, and the key stays refused.
    again = await api.delete(f"/v1/keys/{key_id}")
    assert again.status_code == 200 and again.json()["revoked_at"] is not None


async def test_the_bearer_scheme_is_matched_whatever_its_case(
    gateway_app: FastAPI, gateway_settings: Settings
) -> None:
    assert gateway_settings.admin_key is not None
    key = gateway_settings.admin_key.get_secret_value()
    async with client_of(gateway_app) as client:
        for value in (f"bearer {key}", f"BEARER {key}", f"Bearer   {key}"):
            assert (await client.get("/v1/runs", headers={"Authorization": value})).status_code == 200
        # A scheme that is not Bearer carries no key.
        basic = await client.get("/v1/runs", headers={"Authorization": f"Basic {key}"})
        assert _refused(basic, 401, "missing_api_key")
