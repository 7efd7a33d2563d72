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


class Keys:
    """The test's clients of one loop, each recording what it was answered."""

    def __init__(self, loop: Loop) -> None:
        assert loop.settings.admin_key is not None
        self.loop = loop
        self.recorder = Recorder()
        self.made = [loop.settings.admin_key.get_secret_value()]

    def client(self, key: str, header: str = "authorization") -> httpx.AsyncClient:
        headers = {"x-api-key": key} if header == "x-api-key" else {"Authorization": f"Bearer {key}"}
        made = self.loop.client(headers)
        made.event_hooks["response"].append(self.recorder)
        return made

    async def make_every_kind(self, admin: httpx.AsyncClient) -> None:
        """Keys by every way there is: of each role with an expiry, a new tenant's first key and one
        minted in it by the root, an expired one (from the store) and one never stored."""
        for role in ("member", "viewer", "admin"):
            expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            body = {"name": f"{role} key", "role": role, "expires_at": expires}
            self.made.append(self.recorder.made(await admin.post("/v1/keys", json=body)))
        tenant = await admin.post("/v1/tenants", json={"id": f"secret-{self.loop.settings.brain_id}"})
        self.made.append(self.recorder.made(tenant))
        extra = await admin.post(
            f"/v1/tenants/{tenant.json()['id']}/keys", json={"name": "x", "role": "member"}
        )
        self.made.append(self.recorder.made(extra))
        async with self.loop.engine.begin() as conn:
            _, expired = await keys.create_key(
                conn,
                tenant_id=self.loop.settings.tenant,
                name="expired",
                role=Role.MEMBER,
                created_by=None,
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        self.made += [expired, keys.mint()]

    async def use_them(self, admin: httpx.AsyncClient) -> None:
        """A run with events, artifacts and a fork under the member key; a viewer's refused write, its
        revocation; then every key, usable or not, in both headers."""
        member, viewer = self.made[1], self.made[2]
        async with self.client(member, "x-api-key") as working:
            run = (await working.post("/v1/runs", json={"agent": WORK, "input": "work"})).json()
            await self.loop.until(run["id"], "completed")
            for path in ("", "/events", "/artifacts", "/artifacts/out.txt"):
                assert (await working.get(f"/v1/runs/{run['id']}{path}")).status_code == 200
            assert (await working.post(f"/v1/runs/{run['id']}/fork", json={"at_seq": 2})).status_code == 201
        async with self.client(viewer) as reading:
            assert (await reading.post("/v1/runs", json={"agent": WORK, "input": "x"})).status_code == 403
        listed = (await admin.get("/v1/keys")).json()["data"]
        viewer_id = next(k["id"] for k in listed if k["name"] == "viewer key")
        assert (await admin.delete(f"/v1/keys/{viewer_id}")).status_code == 200
        for key in self.made:
            for header in ("authorization", "x-api-key"):
                async with self.client(key, header) as anyone:
                    await anyone.get("/v1/runs")
                    await anyone.get("/v1/keys")
        audit = await admin.get("/v1/audit", params={"limit": 1000})
        assert audit.status_code == 200 and audit.json()["data"]

    def shown_after_creation(self) -> list[str]:
        """The responses that showed a key other than the one they made."""
        found = []
        for index, response in enumerate(self.recorder.seen):
            shown = response.text + repr(dict(response.headers))
            for key in self.made:
                if self.recorder.creating.get(index) != key and any(part in shown for part in _hidden(key)):
                    found.append(f"{response.request.method} {response.request.url}")
        return found

    async def tables_holding_one(self) -> list[str]:
        found = []
        async with self.loop.engine.connect() as conn:
            for table in metadata.sorted_tables:
                for part in (part for key in self.made for part in _hidden(key)):
                    query = text(f"SELECT count(*) FROM {table.name} AS t WHERE strpos(t::text, :part) > 0")
                    if (await conn.execute(query, {"part": part})).scalar():
                        found.append(table.name)
        return found


async def test_a_key_is_shown_once_and_stored_and_logged_nowhere(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQL statements and their parameters too: a key bound into a query would show there. (Each call
    # sets the capturing handler's level as well, so the lowest comes last.)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG)
    async with Loop(database_url, tmp_path) as loop:
        made = Keys(loop)
        async with made.client(made.made[0]) as admin:
            await made.make_every_kind(admin)
            await made.use_them(admin)
            listed = (await admin.get("/v1/keys")).json()["data"]
        logged = "\n".join(record.getMessage() + str(record.exc_text or "") for record in caplog.records)

        # Listed by prefix alone: the stored keys of the root tenant, of the shown part only.
        shown = {entry["prefix"]: entry for entry in listed}
        for key in [*made.made[:4], made.made[6]]:
            assert "key" not in shown[key[: len(KEY_PREFIX) + 8]]
        assert not made.shown_after_creation()
        assert "SELECT" in logged  # the statements were captured
        assert not any(part in logged for key in made.made for part in _hidden(key)), "a key was logged"
        assert not await made.tables_holding_one()
