"""A key exists outside its holder once: in the response that made it. Not in any later response (a
list of keys shows only its prefix), not in the log records of the gateway, brain or hands, not in a
run's events or the audit log, and in no table of the database, which keeps only its hash.

The gateway processes' own logs are searched in test_two_gateways.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from services.core import keys
from services.core.db.schema import metadata
from services.core.keys import KEY_PREFIX, Role
from tests.unit.brain.loop import Loop, call, scripted

WORK = scripted(
    {"tool_calls": [call("write_file", path="out.txt", content="made\n")]},
    {"tool_calls": [call("bash", command="cat out.txt")]},
    {"text": "done"},
)


class Recorder:
    """Every response the test's clients got, and which keys each was allowed to show."""

    def __init__(self) -> None:
        self.seen: list[httpx.Response] = []
        self.creating: dict[int, str] = {}  # index in `seen` -> the key that response made

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.seen.append(response)

    def made(self, response: httpx.Response) -> str:
        """The key a creating response shows; that response may show it."""
        body = response.json()
        key = str(body["admin_key"]["key"] if "admin_key" in body else body["key"])
        self.creating[self.seen.index(response)] = key
        return key


def _hidden(key: str) -> tuple[str, str]:
    """The key, and the part of it its prefix does not show."""
    return key, key[len(KEY_PREFIX) + 8 :]


async def test_a_key_is_shown_once_and_stored_and_logged_nowhere(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQL statements and their parameters too: a key bound into a query would show there. (Each call
    # sets the capturing handler's level as well, so the lowest comes last.)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    async with Loop(database_url, tmp_path) as loop:
        assert loop.settings.admin_key is not None
        made = [loop.settings.admin_key.get_secret_value()]

        def client(key: str, header: str = "authorization") -> httpx.AsyncClient:
            headers = {"x-api-key": key} if header == "x-api-key" else {"Authorization": f"Bearer {key}"}
            made_client = loop.client(headers)
            made_client.event_hooks["response"].append(recorder)
            return made_client

        async with client(made[0]) as admin:
            for role in ("member", "viewer", "admin"):
                expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
                body = {"name": f"{role} key", "role": role, "expires_at": expires}
                made.append(recorder.made(await admin.post("/v1/keys", json=body)))
            tenant = await admin.post("/v1/tenants", json={"id": f"secret-{loop.settings.brain_id}"})
            made.append(recorder.made(tenant))
            extra = await admin.post(
                f"/v1/tenants/{tenant.json()['id']}/keys", json={"name": "x", "role": "member"}
            )
            made.append(recorder.made(extra))
            async with loop.engine.begin() as conn:
                _, expired = await keys.create_key(
                    conn,
                    tenant_id=loop.settings.tenant,
                    name="expired",
                    role=Role.MEMBER,
                    created_by=None,
                    expires_at=datetime.now(UTC) - timedelta(seconds=1),
                )
            made += [expired, keys.mint()]
            member, viewer = made[1], made[2]

            async with client(member, "x-api-key") as working:
                run = (await working.post("/v1/runs", json={"agent": WORK, "input": "work"})).json()
                await loop.until(run["id"], "completed")
                for path in ("", "/events", "/artifacts", "/artifacts/out.txt"):
                    assert (await working.get(f"/v1/runs/{run['id']}{path}")).status_code == 200
                assert (
                    await working.post(f"/v1/runs/{run['id']}/fork", json={"at_seq": 2})
                ).status_code == 201
            async with client(viewer) as reading:
                assert (await reading.post("/v1/runs", json={"agent": WORK, "input": "x"})).status_code == 403
            viewer_id = next(
                k["id"] for k in (await admin.get("/v1/keys")).json()["data"] if k["name"] == "viewer key"
            )
            assert (await admin.delete(f"/v1/keys/{viewer_id}")).status_code == 200
            for key in made:
                for header in ("authorization", "x-api-key"):
                    async with client(key, header) as anyone:
                        await anyone.get("/v1/runs")
                        await anyone.get("/v1/keys")
            listed = (await admin.get("/v1/keys")).json()["data"]
            audit = await admin.get("/v1/audit", params={"limit": 1000})
            assert audit.status_code == 200 and audit.json()["data"]

        by_prefix = {entry["prefix"]: entry for entry in listed}
        for key in made[:4] + [expired]:
            assert (
                key[: len(KEY_PREFIX) + 8] in by_prefix and "key" not in by_prefix[key[: len(KEY_PREFIX) + 8]]
            )

        for index, response in enumerate(recorder.seen):
            shown = response.text + repr(dict(response.headers))
            for key in made:
                if recorder.creating.get(index) == key:
                    continue
                assert not any(part in shown for part in _hidden(key)), f"{response.request.url} shows a key"
        logged = "\n".join(record.getMessage() + str(record.exc_text or "") for record in caplog.records)
        assert "SELECT" in logged  # the statements were captured
        for key in made:
            assert not any(part in logged for part in _hidden(key)), "a key reached a log record"

        async with loop.engine.connect() as conn:
            for table in metadata.sorted_tables:
                for key in made:
                    for part in _hidden(key):
                        found = await conn.execute(
                            text(f"SELECT count(*) FROM {table.name} AS t WHERE strpos(t::text, :part) > 0"),
                            {"part": part},
                        )
                        assert found.scalar() == 0, f"table {table.name} holds a key"
