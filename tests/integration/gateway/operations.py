"""The gateway's operations as its own `/openapi.json` lists them, and a valid request for each.

The walks in test_auth.py and test_tenant_isolation.py go over this list, so a new route is covered
without anyone adding it: one whose body or path parameter the walks cannot make fails them and
says what to add here.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

# The only routes outside /v1, and the only ones that need no key: probes and scrapers carry none.
UNAUTHENTICATED = frozenset({"/healthz", "/readyz", "/metrics"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# What only a tenant's admins may do, reads included: its keys, its tenant, its audit log.
ADMIN_ONLY = ("/v1/keys", "/v1/tenants", "/v1/audit")
# Tenants are the deployment's business: only admins of its root tenant create, list and change them
# or mint keys in them, whichever tenant the path names.
ROOT_ONLY = frozenset(
    {
        ("POST", "/v1/tenants"),
        ("GET", "/v1/tenants"),
        ("PATCH", "/v1/tenants/{tenant_id}"),
        ("POST", "/v1/tenants/{tenant_id}/keys"),
    }
)
# Stand-in path parameters: well-formed values that name nothing.
NOWHERE = {
    "run_id": "run_nowhere",
    "run_a": "run_nowhere_a",
    "run_b": "run_nowhere_b",
    "agent_id": "agt_nowhere",
    "call_id": "call_nowhere",
    "key_id": "key_nowhere",
    "tenant_id": "no-such-tenant",
    "path": "nowhere.txt",
    "environment_id": "env_nowhere",
    "name": "nowhere-secret",
}
ANSWER_SECONDS = 15.0

SCRIPTED = {"name": "walk", "model": "scripted", "script": [{"text": "done"}]}
_BODIES: dict[tuple[str, str], Callable[[], Any]] = {
    ("POST", "/v1/agents"): lambda: SCRIPTED,
    ("PUT", "/v1/agents/{agent_id}"): lambda: SCRIPTED,
    ("POST", "/v1/runs"): lambda: {"agent": SCRIPTED, "input": "walk"},
    ("POST", "/v1/runs/{run_id}/messages"): lambda: {"content": "hello"},
    ("POST", "/v1/runs/{run_id}/cancel"): lambda: {"reason": "walk"},
    ("POST", "/v1/runs/{run_id}/approvals/{call_id}"): lambda: {"decision": "allow"},
    ("POST", "/v1/runs/{run_id}/interrupt"): lambda: {"message": "stop"},
    ("POST", "/v1/runs/{run_id}/budget"): lambda: {"max_steps": 50},
    ("POST", "/v1/runs/{run_id}/tool_results/{call_id}"): lambda: {"output": "result"},
    ("POST", "/v1/runs/{run_id}/fork"): lambda: {"at_seq": 2},
    ("POST", "/v1/keys"): lambda: {"name": "walk", "role": "viewer"},
    ("POST", "/v1/environments"): lambda: {"name": "walk"},
    ("POST", "/v1/environments/{environment_id}/versions"): lambda: {"limits": {"cpus": 1}},
    ("PUT", "/v1/secrets/{name}"): lambda: {"value": "walk-value"},
    ("POST", "/v1/tenants"): lambda: {"id": f"walk-{secrets.token_hex(4)}"},
    ("PATCH", "/v1/tenants/{tenant_id}"): lambda: {"name": "walked"},
    ("POST", "/v1/tenants/{tenant_id}/keys"): lambda: {"name": "walk", "role": "viewer"},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[str, ...]  # of the path, in order
    takes_body: bool
    streams: bool  # answers with server-sent events

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def writes(self) -> bool:
        return self.method not in READS

    @property
    def admin_only(self) -> bool:
        return self.path.startswith(ADMIN_ONLY)

    @property
    def root_only(self) -> bool:
        return (self.method, self.path) in ROOT_ONLY

    def url(self, values: Mapping[str, str]) -> str:
        unknown = [name for name in self.parameters if name not in values]
        assert not unknown, f"{self.label}: the walk has no value for {unknown}; add one to NOWHERE"
        return re.sub(r"\{(\w+)\}", lambda m: quote(values[m[1]], safe=""), self.path)

    def body(self) -> Any:
        """A valid body (None when the operation takes none)."""
        if not self.takes_body:
            return None
        make = _BODIES.get((self.method, self.path))
        assert make is not None, f"{self.label} takes a body the walks cannot make: add one to _BODIES"
        return make()


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation under /v1 in an OpenAPI document."""
    found = []
    for path, methods in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in methods.items():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    parameters=tuple(re.findall(r"\{(\w+)\}", path)),
                    takes_body="requestBody" in operation,
                    streams="text/event-stream" in content,
                )
            )
    return sorted(found, key=lambda op: (op.path, op.method))


async def served_operations(client: httpx.AsyncClient) -> tuple[list[Operation], dict[str, Any]]:
    """The operations of the gateway behind `client`, from the document it serves, and the document."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return operations(document), document


async def send(
    client: httpx.AsyncClient,
    operation: Operation,
    values: Mapping[str, str] = NOWHERE,
    *,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One request of `operation`; `body` defaults to the operation's valid one.

    The in-process transport answers only once the app is done, so a stream that opened would never
    answer: a deadline turns that into a failure that names the operation.
    """
    content = operation.body() if body is None else body
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            return await client.request(
                operation.method,
                operation.url(values),
                json=content,
                params=params,
                headers=headers,
            )
    except TimeoutError:
        raise AssertionError(f"{operation.label} did not answer within {ANSWER_SECONDS}s") from None


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    code = body["error"].get("code")
    return code if isinstance(code, str) else None
