"""`GET /v1/usage`: a tenant's usage per agent and per day, never another tenant's; every tenant's for
root admins only; bad ranges are a 422 with a code. Usage is made the way the brain makes it: appends
that increment a run's counters."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from loopd import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import events as event_log
from services.core import payloads
from services.core.db.engine import autocommit
from services.core.db.schema import usage as usage_table
from services.core.settings import Settings

SCRIPTED = {"name": "t", "model": "scripted", "script": [{"text": "done"}]}


async def start(api: httpx.AsyncClient, key: str | None = None, **body: Any) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    created = await api.post("/v1/runs", json={"input": "go", **body}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def spend(
    engine: AsyncEngine, run_id: str, tokens: tuple[int, int], cost: float, tools: int = 0
) -> None:
    response = payloads.ModelResponse(
        text="ok",
        tool_calls=[],
        usage=payloads.Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
        stop_reason="end_turn",
        model="scripted",
        cost_usd=cost,
        context_seq=None,
    )
    changes = {
        "input_tokens": event_log.Increment(tokens[0]),
        "output_tokens": event_log.Increment(tokens[1]),
        "cost_usd": event_log.Increment(cost),
        "tool_calls": event_log.Increment(tools),
    }
    async with autocommit(engine).connect() as conn:
        await event_log.append(conn, event_log.Append(run_id, (event_log.NewEvent.of(response),), changes))


async def as_yesterday(engine: AsyncEngine, run_id: str) -> None:
    """Move what the run used so far to the day before."""
    async with engine.begin() as conn:
        await conn.execute(
            update(usage_table).where(usage_table.c.run_id == run_id).values(day=usage_table.c.day - 1)
        )


async def new_tenant(api: httpx.AsyncClient) -> tuple[str, str]:
    tenant = f"t-{secrets.token_hex(4)}"
    created = await api.post("/v1/tenants", json={"id": tenant})
    assert created.status_code == 201, created.text
    return tenant, str(created.json()["admin_key"]["key"])


class Through(httpx.AsyncBaseTransport):
    """Sends another client's requests through the test's gateway client."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.api.send(request)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_usage_per_agent_and_per_day_of_the_callers_tenant_only(
    api: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: Settings
) -> None:
    await api.post("/v1/agents", json={**SCRIPTED, "id": "coder"})
    coder, inline = await start(api, agent_id="coder"), await start(api, agent=SCRIPTED)
    await spend(engine, coder, (100, 20), 0.5, tools=2)
    await spend(engine, inline, (5, 5), 0.0)
    await as_yesterday(engine, inline)
    await spend(engine, coder, (1, 1), 0.25, tools=1)
    other_tenant, other_key = await new_tenant(api)
    await api.post("/v1/agents", json={**SCRIPTED, "id": "coder"}, headers=bearer(other_key))
    theirs = await start(api, other_key, agent_id="coder")
    await spend(engine, theirs, (9000, 9000), 99.0)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)

    answer = await api.get("/v1/usage", params={"since": yesterday.isoformat(), "until": today.isoformat()})

    assert answer.status_code == 200, answer.text
    report = answer.json()
    mine = gateway_settings.tenant
    assert (report["tenant"], report["since"], report["until"]) == (mine, str(yesterday), str(today))
    assert report["total"] == {
        "input_tokens": 106,
        "output_tokens": 26,
        "tokens": 132,
        "cost_usd": 0.75,
        "tool_calls": 3,
        "sandbox_seconds": 0.0,
    }
    assert [(t["tenant"], t["tokens"]) for t in report["tenants"]] == [(mine, 132)]
    assert [(a["agent_id"], a["tokens"], a["tool_calls"]) for a in report["agents"]] == [
        (None, 10, 0),
        ("coder", 122, 3),
    ]
    assert [(d["day"], d["tokens"]) for d in report["days"]] == [(str(yesterday), 10), (str(today), 122)]

    # The other tenant sees its own usage alone.
    theirs_seen = (await api.get("/v1/usage", headers=bearer(other_key))).json()
    assert theirs_seen["tenant"] == other_tenant
    assert [(a["tenant"], a["agent_id"], a["tokens"]) for a in theirs_seen["agents"]] == [
        (other_tenant, "coder", 18000)
    ]


async def test_the_default_range_is_this_calendar_month(api: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await spend(engine, await start(api, agent=SCRIPTED), (3, 4), 0.0)
    report = (await api.get("/v1/usage")).json()
    today = datetime.now(UTC).date()
    since, until = date.fromisoformat(report["since"]), date.fromisoformat(report["until"])
    assert (
        since == today.replace(day=1) and until.month == today.month and (until + timedelta(days=1)).day == 1
    )
    assert report["total"]["tokens"] == 7
    only_until = (await api.get("/v1/usage", params={"until": "2024-02-10"})).json()
    assert (only_until["since"], only_until["until"]) == ("2024-02-01", "2024-02-10")
    only_since = (await api.get("/v1/usage", params={"since": "2024-02-10"})).json()
    assert (only_since["since"], only_since["until"]) == ("2024-02-10", "2024-02-29")
    assert only_since["total"]["tokens"] == 0 and only_since["days"] == []


async def test_root_admins_see_every_tenant_and_no_one_else_does(
    api: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: Settings
) -> None:
    await spend(engine, await start(api, agent=SCRIPTED), (1, 1), 0.0)
    other_tenant, other_key = await new_tenant(api)
    await spend(engine, await start(api, other_key, agent=SCRIPTED), (2, 2), 0.0)

    everyone = (await api.get("/v1/usage", params={"all_tenants": "true"})).json()
    assert everyone["tenant"] is None
    per_tenant = {t["tenant"]: t["tokens"] for t in everyone["tenants"]}
    assert per_tenant[gateway_settings.tenant] == 2 and per_tenant[other_tenant] == 4
    assert everyone["total"]["tokens"] == sum(per_tenant.values())

    refused = await api.get("/v1/usage", params={"all_tenants": "true"}, headers=bearer(other_key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    viewer = await api.post("/v1/keys", json={"name": "reader", "role": "viewer"})
    viewer_key = viewer.json()["key"]
    assert (await api.get("/v1/usage", headers=bearer(viewer_key))).status_code == 200
    refused = await api.get("/v1/usage", params={"all_tenants": "true"}, headers=bearer(viewer_key))
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"since": "2025-03-02", "until": "2025-03-01"}, "invalid_range"),
        ({"since": "2024-01-01", "until": "2025-01-01"}, "invalid_range"),
        ({"since": "yesterday"}, "validation_error"),
        ({"until": "2025-02-30"}, "validation_error"),
        ({"all_tenants": "perhaps"}, "validation_error"),
    ],
)
async def test_a_bad_query_is_a_422_with_a_code(
    api: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    answer = await api.get("/v1/usage", params=params)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == code


async def test_a_year_is_the_longest_range_and_the_calendar_ends_are_answered(api: httpx.AsyncClient) -> None:
    assert (
        await api.get("/v1/usage", params={"since": "2024-01-01", "until": "2024-12-31"})
    ).status_code == 200
    for params in ({"since": "9999-12-20"}, {"until": "0001-01-05"}):
        assert (await api.get("/v1/usage", params=params)).status_code == 200


async def test_the_client_reads_usage(
    api: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: Settings
) -> None:
    await spend(engine, await start(api, agent=SCRIPTED), (10, 5), 0.125, tools=1)
    assert gateway_settings.admin_key is not None
    key = gateway_settings.admin_key.get_secret_value()
    async with AsyncClient("http://loopd.test", api_key=key, transport=Through(api)) as client:
        report = await client.usage(since=datetime.now(UTC).date())
    assert report.tenant == gateway_settings.tenant
    assert (report.total.tokens, report.total.cost_usd, report.total.tool_calls) == (15, 0.125, 1)
    assert [a.agent_id for a in report.agents] == [None]
