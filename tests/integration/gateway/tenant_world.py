"""Two tenants on one in-process loop (a real brain on the real PostgreSQL, scripted models, in-process
hands): the first, the deployment's root tenant, holds one of every kind of object the API serves;
the second, made by the first's admin, holds one finished run.

Everything the first tenant owns carries MARKER or an id listed in `secrets()`, so that a response
to the second tenant can be searched for any of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets as random
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.waiting import eventually
from services.core import keys
from services.core import runs as run_store
from tests.unit.brain.loop import QUICK_RETRY, Loop, call, of_type, scripted

MARKER = f"first-tenant-only-{random.token_hex(6)}"
ARTIFACT = "notes/plan.txt"
ANSWER_SCHEMA = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}}, "required": ["color"]}
SLEEP = "sleep 900"
SECRET_VALUE = f"secret-value-{random.token_hex(8)}"


def _agent(agent_id: str) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": f"agent {MARKER}",
        "model": "scripted",
        "system": f"system {MARKER}",
        "script": [
            {"tool_calls": [call("write_file", path=ARTIFACT, content=f"{MARKER}\n")]},
            {"text": f"done {MARKER}"},
        ],
        "retry": QUICK_RETRY,
    }


def _marked(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return scripted(*turns, system=f"system {MARKER}", **fields)


# The runs the first tenant starts itself, by their part in the walk, with what each waits in.
_STARTED: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "approval": (
        _marked({"tool_calls": [call("bash", command="echo hi")]}, permissions={"bash": "ask"}),
        {},
        "waiting",
    ),
    "question": (
        _marked(
            {"tool_calls": [call("ask_user", question=f"colour? {MARKER}", schema=ANSWER_SCHEMA)]},
            tools=["ask_user"],
        ),
        {},
        "waiting",
    ),
    "client_tool": (
        _marked({"tool_calls": [call("lookup", q=MARKER)]}, tools=[], client_tools=[{"name": "lookup"}]),
        {},
        "waiting",
    ),
    "budget": (
        _marked(
            {"tool_calls": [call("write_file", path="a", content=MARKER)]},
            {"tool_calls": [call("write_file", path="b", content=MARKER)]},
        ),
        {"budget": {"max_steps": 1}},
        "waiting",
    ),
    "parent": (
        _marked(
            {
                "tool_calls": [
                    call(
                        "spawn_agent",
                        agent=_marked(
                            {"tool_calls": [call("ask_user", question=MARKER)]}, tools=["ask_user"]
                        ),
                        input=f"child task {MARKER}",
                    )
                ]
            },
            tools=["spawn_agent"],
        ),
        {},
        "waiting",
    ),
    # Holds its sandbox while it sleeps, so the hands pool counts a sandbox of the first tenant.
    "sleeping": (_marked({"tool_calls": [call("bash", command=SLEEP)]}), {}, "running"),
}


@dataclass
class World:
    loop: Loop
    first: httpx.AsyncClient  # the root tenant's admin
    second: httpx.AsyncClient  # the second tenant's admin
    first_tenant: str
    second_tenant: str
    agent_id: str
    runs: dict[str, str]  # the first tenant's, by their part
    calls: dict[str, tuple[str, str]]  # (run, call) of the first tenant's calls waiting for a person
    key_ids: dict[str, str]  # the first tenant's keys by role
    second_key_id: str
    second_run: str
    environment_id: str  # the first tenant's, at version 2
    secret_name: str  # the first tenant's, which its environment names
    idempotency_key: str  # the first tenant launched its "done" run with it
    launch: dict[str, Any]  # and this body
    prefixes: list[str] = field(default_factory=list)
    artifact_sha256: str = ""

    @property
    def creator_key_id(self) -> str:
        """The root key that made the second tenant: the second tenant's own records name it."""
        return self.key_ids["admin"]

    def secrets(self) -> set[str]:
        """What no response to the second tenant may carry unless its request did."""
        found = {MARKER, self.first_tenant, self.artifact_sha256, *self.runs.values(), *self.prefixes}
        found |= {self.environment_id, self.secret_name, SECRET_VALUE}
        found |= {key_id for key_id in self.key_ids.values() if key_id != self.creator_key_id}
        return found


async def build(exit_stack: AsyncExitStack, database_url: str, root: Path) -> World:
    # The walk sends a few hundred requests with one key within seconds: far past the default rate
    # limits, which are tested in test_rate_limits.py, so they are raised (not turned off) here.
    loop = await exit_stack.enter_async_context(
        Loop(
            database_url,
            root,
            tool_timeout_seconds=900.0,
            rate_limit_reads="100000/minute",
            rate_limit_writes="100000/minute",
        )
    )
    first = loop.api
    tenant_id = f"second-{random.token_hex(4)}"
    made = await first.post("/v1/tenants", json={"id": tenant_id, "name": "the second tenant"})
    assert made.status_code == 201, made.text
    second_key = made.json()["admin_key"]
    second = await exit_stack.enter_async_context(
        loop.client({"Authorization": f"Bearer {second_key['key']}"})
    )

    assert loop.settings.admin_key is not None
    key_ids = {"admin": keys.configured_key_id(loop.settings.admin_key.get_secret_value())}
    prefixes = [loop.settings.admin_key.get_secret_value()[:11]]
    for role in ("member", "viewer"):
        created = await first.post("/v1/keys", json={"name": f"{role} {MARKER}", "role": role})
        assert created.status_code == 201, created.text
        key_ids[role] = created.json()["id"]
        prefixes.append(created.json()["prefix"])

    agent_id = f"agent-{random.token_hex(4)}"
    assert (await first.post("/v1/agents", json=_agent(agent_id))).status_code == 201
    versioned = await first.put(
        f"/v1/agents/{agent_id}", json={k: v for k, v in _agent(agent_id).items() if k != "id"}
    )
    assert versioned.status_code == 201 and versioned.json()["version"] == 2

    environment_id, secret_name = await _environment(first)

    idempotency_key = f"launch-{random.token_hex(4)}"
    launch = {"agent_id": agent_id, "input": f"task {MARKER}", "metadata": {"note": MARKER}}
    launched = await first.post("/v1/runs", json=launch, headers={"Idempotency-Key": idempotency_key})
    assert launched.status_code == 201, launched.text
    runs = {"done": launched.json()["id"]}
    for part, (agent, body, _) in _STARTED.items():
        runs[part] = await loop.start(agent, f"task {MARKER}", **body)
    # Cancelled before the loop stops, which would otherwise wait out the brain's drain for it.
    exit_stack.push_async_callback(first.post, f"/v1/runs/{runs['sleeping']}/cancel")
    second_run = await _second_run(loop, second)

    await loop.until(runs["done"], "completed")
    forked = await first.post(f"/v1/runs/{runs['done']}/fork", json={"at_seq": 2})
    assert forked.status_code == 201, forked.text
    runs["fork"] = forked.json()["id"]
    await asyncio.gather(
        loop.until(runs["fork"], "completed", "failed"),
        *(loop.until(runs[part], status) for part, (_, _, status) in _STARTED.items()),
    )
    [child] = of_type(await loop.events(runs["parent"]), "child.started")
    runs["child"] = child["child_run_id"]
    await loop.until(runs["child"], "waiting")
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true(SLEEP in driver.commands))

    [artifact] = of_type(await loop.events(runs["done"]), "artifact.created")
    assert artifact["sha256"] == hashlib.sha256(f"{MARKER}\n".encode()).hexdigest()
    return World(
        loop=loop,
        first=first,
        second=second,
        first_tenant=loop.settings.tenant,
        second_tenant=tenant_id,
        agent_id=agent_id,
        runs=runs,
        calls=await _waiting_calls(loop, runs),
        key_ids=key_ids,
        second_key_id=second_key["id"],
        second_run=second_run,
        environment_id=environment_id,
        secret_name=secret_name,
        idempotency_key=idempotency_key,
        launch=launch,
        prefixes=prefixes,
        artifact_sha256=artifact["sha256"],
    )


async def _environment(first: httpx.AsyncClient) -> tuple[str, str]:
    """An environment at version 2 whose second version puts a secret on requests to one host."""
    environment_id, secret_name = f"env-{random.token_hex(4)}", f"secret-{random.token_hex(4)}"
    stored = await first.put(f"/v1/secrets/{secret_name}", json={"value": SECRET_VALUE})
    assert stored.status_code == 200, stored.text
    made = await first.post("/v1/environments", json={"id": environment_id, "name": f"env {MARKER}"})
    assert made.status_code == 201, made.text
    network = {"policy": "allowlist", "hosts": [{"pattern": "api.example.test"}]}
    use = {"secret": secret_name, "host": "api.example.test", "header": "Authorization", "env_name": "TOKEN"}
    versioned = await first.post(
        f"/v1/environments/{environment_id}/versions", json={"network": network, "secrets": [use]}
    )
    assert versioned.status_code == 201 and versioned.json()["version"] == 2, versioned.text
    return environment_id, secret_name


async def _second_run(loop: Loop, second: httpx.AsyncClient) -> str:
    created = await second.post(
        "/v1/runs", json={"agent": scripted({"text": "second"}), "input": "its own task"}
    )
    assert created.status_code == 201, created.text
    run_id = str(created.json()["id"])
    await loop.until(run_id, "completed", headers={"Authorization": second.headers["Authorization"]})
    return run_id


async def _waiting_calls(loop: Loop, runs: dict[str, str]) -> dict[str, tuple[str, str]]:
    calls = {}
    for part in ("approval", "client_tool"):
        [call_id] = (await loop.run(runs[part]))["waiting_for"]["call_ids"]
        calls[part] = (runs[part], call_id)
    for part in ("question", "child"):
        calls[part] = (runs[part], (await loop.run(runs[part]))["waiting_for"]["call_id"])
    [spawn] = (await loop.run(runs["parent"]))["waiting_for"]["call_ids"]
    calls["parent"] = (runs["parent"], spawn)
    return calls


async def state_of(world: World) -> dict[str, Any]:
    """The first tenant's runs, keys and agent as the stores hold them: the second tenant's requests
    must leave all of it as it was."""
    async with world.loop.engine.connect() as conn:
        runs = {
            part: (row.status, row.last_seq, row.waiting_for)
            for part, run_id in world.runs.items()
            for row in [await run_store.get_run(conn, world.first_tenant, run_id)]
        }
        listed = await keys.list_keys(conn, world.first_tenant)
    agent = (await world.first.get(f"/v1/agents/{world.agent_id}")).json()
    environment = (await world.first.get(f"/v1/environments/{world.environment_id}")).json()
    secret = (await world.first.get(f"/v1/secrets/{world.secret_name}")).json()
    return {
        "runs": runs,
        "keys": sorted((row.id, row.revoked_at) for row in listed),
        "agent": agent,
        "environment": environment,
        "secret": secret,
    }


async def _true(value: bool) -> bool:
    return value
