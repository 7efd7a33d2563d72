"""A tenant sees nothing of another's: with the second tenant's admin key, every operation in the
gateway's own /openapi.json, pointed at each of the first tenant's objects, answers 404, or a list
without them, or (for what only the root tenant's admins may do) 403 whatever it names; never
the object, and never a 403 that says it exists. The first tenant's objects are left as they were."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from harness.waiting import eventually
from tests.integration.gateway.operations import (
    NOWHERE,
    SCRIPTED,
    Operation,
    error_code,
    send,
    served_operations,
)
from tests.integration.gateway.tenant_world import ARTIFACT, MARKER, World, build, state_of
from tests.unit.brain.loop import call, of_type, scripted

# Operations that name a new object of the caller's by an id the caller chooses, and their answer:
# another tenant's object of that id is no obstacle, and no concern of the answer.
OWN_BY_ID = {("PUT", "/v1/agents/{agent_id}"): 201, ("PUT", "/v1/secrets/{name}"): 200}


@pytest.fixture(scope="module")
async def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        yield await build(stack, database_url, tmp_path_factory.mktemp("tenants"))


@dataclass(frozen=True)
class Call:
    """One request of the walk, by the second tenant's admin."""

    values: dict[str, str] = field(default_factory=lambda: dict(NOWHERE))
    body: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    # Only the first tenant's objects: its own admin reaches them (the check that the walk aims right).
    first_reaches: bool = True
    status: int | None = None  # what the answer must be, when it is not the rule's
    # Makes the second tenant an object of an id the first tenant's uses: walked after the reads of
    # that id, which must not find the second tenant's own object instead.
    late: bool = False


def _calls(operation: Operation, world: World) -> list[Call]:
    """Each request the walk makes of `operation`: one per object of the first tenant's it can name."""
    runs = world.runs
    named = {
        **NOWHERE,
        "run_id": runs["done"],
        "run_a": runs["done"],
        "run_b": runs["fork"],
        "agent_id": world.agent_id,
        "key_id": world.key_ids["member"],
        "tenant_id": world.first_tenant,
        "path": ARTIFACT,
        "environment_id": world.environment_id,
        "name": world.secret_name,
    }
    params = set(operation.parameters)
    if "call_id" in params:
        targets = [{**named, "run_id": run, "call_id": c} for run, c in world.calls.values()]
    elif "path" in params:
        targets = [{**named, "run_id": runs[part]} for part in ("done", "fork")]
    elif "run_id" in params:
        targets = [{**named, "run_id": run} for run in runs.values()]
    elif "key_id" in params:
        targets = [{**named, "key_id": key_id} for key_id in world.key_ids.values()]
    else:
        targets = [named]
    late = (operation.method, operation.path) in OWN_BY_ID
    calls = [Call(values, late=late) for values in targets]
    if {"run_a", "run_b"} <= params:
        # One run of each tenant, either way round: still nothing of the first tenant's.
        for pair in ((runs["done"], world.second_run), (world.second_run, runs["done"])):
            calls.append(Call({**named, "run_a": pair[0], "run_b": pair[1]}, first_reaches=False))
    if operation.streams:
        calls += [Call(c.values, headers={"Last-Event-ID": "1"}) for c in calls]
    if (
        operation.path in ("/v1/agents/{agent_id}", "/v1/environments/{environment_id}")
        and not operation.writes
    ):
        calls += [Call(named, params={"version": str(v)}) for v in (1, 2)]
    if operation.path == "/v1/runs/{run_id}/messages":
        calls += [Call({**named, "run_id": runs["question"]}, body={"content": {"color": "blue"}})]
    if operation.root_only and operation.parameters:
        # Refused for what it is, whatever it names: the same answer for a tenant that is not there.
        calls.append(Call(dict(NOWHERE), first_reaches=False))
    return calls + _list_and_create_calls(operation, world)


def _list_and_create_calls(operation: Operation, world: World) -> list[Call]:
    """Lists filtered to the first tenant's objects, and creates that name them."""
    key = (operation.method, operation.path)
    if key == ("GET", "/v1/runs"):
        return [Call(params={"status": s}) for s in ("waiting", "running", "completed")]
    if key == ("GET", "/v1/audit"):
        filters = [{"object_id": run} for run in world.runs.values()]
        filters += [{"key_id": key_id} for key_id in world.key_ids.values()]
        filters += [{"object_id": world.agent_id}, {"object_type": "key"}]
        return [Call(params=f) for f in filters]
    environment = {"id": world.environment_id}
    if key == ("POST", "/v1/runs"):
        by_agent = {"agent_id": world.agent_id, "input": "borrowing an agent"}
        in_environment = {"agent": SCRIPTED, "input": "borrowing an environment", "environment": environment}
        return [Call(body=by_agent, status=404), Call(body=in_environment, status=422)]
    if key == ("POST", "/v1/agents"):
        return [
            Call(body={**SCRIPTED, "id": world.agent_id}, status=201, late=True),
            Call(body={**SCRIPTED, "environment": environment}, status=422),
        ]
    if key == ("POST", "/v1/environments"):
        return [Call(body={"id": world.environment_id}, status=201, late=True)]
    if key == ("GET", "/v1/environments"):
        return [Call(params={"include_archived": "true"})]
    return []


def _sent(operation: Operation, request: Call) -> str:
    return json.dumps([operation.url(request.values), request.body, request.params, request.headers])


def _judge(operation: Operation, request: Call, response: httpx.Response, world: World) -> str | None:
    """What is wrong with the second tenant's answer, or None."""
    sent = _sent(operation, request)
    leaked = sorted(s for s in world.secrets() if s in response.text and s not in sent)
    where = f"{operation.label} {sent}: {response.status_code} {response.text[:300]}"
    if leaked:
        return f"{where} carries the first tenant's {leaked}"
    if response.status_code >= 500:
        return where
    if operation.root_only:
        ok = response.status_code == 403 and error_code(response) == "forbidden"
    elif request.status is not None:
        ok = response.status_code == request.status
    elif (operation.method, operation.path) in OWN_BY_ID:
        # The second tenant's own object; that the first's is untouched, state_of shows.
        ok = response.status_code == OWN_BY_ID[(operation.method, operation.path)]
    elif operation.parameters:
        ok = response.status_code == 404 and (error_code(response) or "").endswith("not_found")
    else:
        ok = 200 <= response.status_code < 300
    return None if ok else where


async def test_every_operation_answers_the_second_tenant_with_nothing_of_the_first(world: World) -> None:
    walk, _ = await served_operations(world.second)
    before = await state_of(world)
    planned = [(operation, request) for operation in walk for request in _calls(operation, world)]
    wrong, reached = [], []
    for operation, request in sorted(planned, key=lambda planned: planned[1].late):
        response = await send(
            world.second,
            operation,
            request.values,
            body=request.body,
            params=request.params,
            headers=request.headers,
        )
        complaint = _judge(operation, request, response, world)
        if complaint:
            wrong.append(complaint)
        if operation.parameters and request.first_reaches:
            reached.append((operation, request))
    assert not wrong, "\n".join(wrong)
    assert await state_of(world) == before

    # The walk aimed at real objects: the first tenant's own admin finds each one it read.
    for operation, request in reached:
        if operation.writes or operation.streams or request.late:
            continue
        response = await send(world.first, operation, request.values, params=request.params)
        assert response.status_code == 200, f"{operation.label} {request.values}: {response.text}"


async def test_the_pool_counts_only_the_callers_own_sandboxes(world: World) -> None:
    async def first_sees_its_sandbox() -> bool:
        hands: list[dict[str, int]] = (await world.first.get("/v1/hands")).json()["data"]
        return sum(h["sandbox_count"] for h in hands) >= 1

    await eventually(first_sees_its_sandbox)
    seen = await world.second.get("/v1/hands")
    assert seen.status_code == 200
    assert [h["sandbox_count"] for h in seen.json()["data"]] == [0] * len(world.loop.hands)


async def test_keys_and_audit_of_one_tenant_are_invisible_to_the_other(world: World) -> None:
    first_keys = {k["id"] for k in (await world.first.get("/v1/keys")).json()["data"]}
    second_keys = {k["id"] for k in (await world.second.get("/v1/keys")).json()["data"]}
    assert set(world.key_ids.values()) <= first_keys and world.second_key_id in second_keys
    assert not first_keys & second_keys

    first_audit = (await world.first.get("/v1/audit", params={"limit": 1000})).json()["data"]
    second_audit = (await world.second.get("/v1/audit", params={"limit": 1000})).json()["data"]
    assert {e["object_id"] for e in first_audit} >= set(world.runs.values()) - {world.runs["child"]}
    assert not {e["id"] for e in first_audit} & {e["id"] for e in second_audit}
    assert world.second_key_id not in {e["key_id"] for e in first_audit}
    assert not set(world.runs.values()) & {e["object_id"] for e in second_audit}

    for key_id in world.key_ids.values():
        refused = await world.second.delete(f"/v1/keys/{key_id}")
        assert (refused.status_code, error_code(refused)) == (404, "key_not_found")
    refused = await world.first.delete(f"/v1/keys/{world.second_key_id}")
    assert (refused.status_code, error_code(refused)) == (404, "key_not_found")
    assert (await world.second.get("/v1/runs")).status_code == 200


async def test_only_the_root_tenants_admins_manage_tenants(world: World) -> None:
    for method, path in (("POST", "/v1/tenants"), ("GET", "/v1/tenants")):
        body = {"id": "made-by-a-tenant"} if method == "POST" else None
        refused = await world.second.request(method, path, json=body)
        assert (refused.status_code, error_code(refused)) == (403, "forbidden"), refused.text
    other = await world.second.get(f"/v1/tenants/{world.first_tenant}")
    assert (other.status_code, error_code(other)) == (404, "tenant_not_found")
    own = await world.second.get(f"/v1/tenants/{world.second_tenant}")
    assert own.status_code == 200 and own.json()["id"] == world.second_tenant
    listed = (await world.first.get("/v1/tenants")).json()["data"]
    assert {world.first_tenant, world.second_tenant} <= {t["id"] for t in listed}


async def test_a_run_cannot_spawn_another_tenants_agent(world: World) -> None:
    """By the first tenant's agent id, a spawn finds the second tenant's own agent of that id (the
    walk may have made one), or none: never the first tenant's."""
    agent = scripted(
        {"tool_calls": [call("spawn_agent", agent_id=world.agent_id, input="borrowed")]},
        {"text": "over"},
        tools=["spawn_agent"],
    )
    created = await world.second.post("/v1/runs", json={"agent": agent, "input": "spawn theirs"})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    await world.loop.until(
        run_id, "completed", headers={"Authorization": world.second.headers["Authorization"]}
    )
    events = (await world.second.get(f"/v1/runs/{run_id}/events")).json()["data"]
    [result] = of_type(events, "tool.result")
    own = (await world.second.get(f"/v1/agents/{world.agent_id}")).status_code == 200
    if not own:
        assert result["error"] == "spawn_refused" and not of_type(events, "child.started")
    for child in of_type(events, "child.started"):
        child_run = await world.second.get(f"/v1/runs/{child['child_run_id']}")
        assert child_run.status_code == 200 and MARKER not in child_run.text
        assert (await world.first.get(f"/v1/runs/{child['child_run_id']}")).status_code == 404
    assert MARKER not in json.dumps(events)


async def test_an_idempotency_key_belongs_to_its_tenant(world: World) -> None:
    body = {"agent": SCRIPTED, "input": "the same key, another tenant"}
    launched = await world.second.post(
        "/v1/runs", json=body, headers={"Idempotency-Key": world.idempotency_key}
    )
    assert launched.status_code == 201, launched.text
    assert "Idempotent-Replayed" not in launched.headers
    assert launched.json()["id"] not in world.runs.values()
    assert launched.json()["tenant"] == world.second_tenant
    # The first tenant's launch under that key is still its own to replay.
    replayed = await world.first.post(
        "/v1/runs", json=world.launch, headers={"Idempotency-Key": world.idempotency_key}
    )
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == world.runs["done"]
