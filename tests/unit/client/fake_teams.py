"""An in-memory stand-in for the gateway's keys, tenants and audit calls, over httpx.MockTransport.

It checks the key on each request the way the gateway does (401 without a known, live key; 403
without the role; another tenant's tenant is 404), so the CLI's error lines can be tested against
the same answers the real gateway gives.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

RANK = {"viewer": 0, "member": 1, "admin": 2}
ROOT = "default"
AT = "2026-01-01T00:00:00+00:00"


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@dataclass
class Key:
    id: str
    tenant: str
    name: str
    role: str
    secret: str
    expires_at: str | None = None
    revoked_at: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "tenant": self.tenant, "name": self.name, "role": self.role,
            "prefix": self.secret[:11], "created_by": None, "created_at": AT,
            "expires_at": self.expires_at, "revoked_at": self.revoked_at,
        }  # fmt: skip


@dataclass
class FakeTeams:
    keys: list[Key] = field(default_factory=list)
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tenants.setdefault(ROOT, {"id": ROOT, "name": ROOT, "quotas": {}, "created_at": AT})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def bodies_of(self, method: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method]

    def add_key(self, role: str = "admin", tenant: str = ROOT) -> Key:
        key = Key(
            f"key_{secrets.token_hex(4)}", tenant, f"{role} key", role, "lk_" + secrets.token_urlsafe(32)
        )
        self.keys.append(key)
        return key

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        caller = self._caller(request)
        if isinstance(caller, httpx.Response):
            return caller
        if request.url.path == "/v1/runs":
            return httpx.Response(200, json={"data": [], "next_cursor": None})
        if caller.role != "admin":
            return error(
                403, "forbidden", f"this needs a key with the admin role; this key is a {caller.role}"
            )
        body = json.loads(request.content) if request.content else {}
        parts = request.url.path.strip("/").split("/")[1:]
        if parts[0] == "keys":
            return self._keys(request.method, parts[1:], caller, body)
        if parts[0] == "tenants":
            return self._tenants(request.method, parts[1:], caller, body)
        if parts[0] == "audit":
            return self._audit(request)
        return error(404, "not_found", "Not Found")

    def _caller(self, request: httpx.Request) -> Key | httpx.Response:
        header = request.headers.get("authorization", "")
        if not header:
            return error(401, "missing_api_key", "this needs an API key: send Authorization: Bearer <key>")
        found = next((k for k in self.keys if f"Bearer {k.secret}" == header), None)
        if found is None:
            return error(401, "invalid_api_key", "the API key is not known")
        if found.revoked_at is not None:
            return error(401, "api_key_revoked", "the API key is revoked")
        return found

    def _keys(self, method: str, rest: list[str], caller: Key, body: dict[str, Any]) -> httpx.Response:
        if method == "POST":
            return httpx.Response(201, json=self._mint(caller.tenant, body))
        if method == "GET":
            mine = [k.wire() for k in reversed(self.keys) if k.tenant == caller.tenant]
            return httpx.Response(200, json={"data": mine})
        found = next((k for k in self.keys if k.id == rest[0] and k.tenant == caller.tenant), None)
        if found is None:
            return error(404, "key_not_found", f"key {rest[0]} not found")
        found.revoked_at = found.revoked_at or AT
        return httpx.Response(200, json=found.wire())

    def _mint(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self.add_key(body.get("role", "member"), tenant)
        key.name, key.expires_at = body["name"], body.get("expires_at")
        self.audit.append({"action": "key.created", "object_type": "key", "object_id": key.id})
        return {**key.wire(), "key": key.secret}

    def _tenants(self, method: str, rest: list[str], caller: Key, body: dict[str, Any]) -> httpx.Response:
        if (rest and rest[0] not in self.tenants) or (rest and caller.tenant not in (ROOT, rest[0])):
            return error(404, "tenant_not_found", f"tenant {rest[0]} not found")
        if caller.tenant != ROOT and (method != "GET" or not rest):
            return error(403, "forbidden", "only admins of the deployment's root tenant manage tenants")
        if method == "POST" and not rest:
            tenant = {
                "id": body["id"],
                "name": body.get("name") or body["id"],
                "quotas": body.get("quotas", {}),
            }
            self.tenants[body["id"]] = {**tenant, "created_at": AT}
            admin = self._mint(body["id"], {"name": f"{body['id']} admin", "role": "admin"})
            return httpx.Response(201, json={**self.tenants[body["id"]], "admin_key": admin})
        if method == "POST":
            return httpx.Response(201, json=self._mint(rest[0], body))
        if method == "PATCH":
            tenant = self.tenants[rest[0]]
            tenant.update({k: v for k, v in body.items() if v is not None})
            return httpx.Response(200, json=tenant)
        if rest:
            return httpx.Response(200, json=self.tenants[rest[0]])
        return httpx.Response(200, json={"data": list(self.tenants.values())})

    def _audit(self, request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", 0))
        limit = int(request.url.params.get("limit", 100))
        wanted = request.url.params.get("action")
        entries = [
            {"id": n, "at": AT, "key_id": None, "details": {}, **entry}
            for n, entry in enumerate(self.audit, start=1)
            if n > after and (wanted is None or entry["action"] == wanted)
        ][:limit]
        next_after = entries[-1]["id"] if len(entries) == limit else None
        return httpx.Response(200, json={"data": entries, "next_after": next_after})
