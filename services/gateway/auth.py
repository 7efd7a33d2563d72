"""Who is calling: the API key on the request, checked against the database on every request, and
the role each route needs. Routes take a `Viewer`, `Member` or `Admin` and scope every query to its
tenant.

A key comes as `Authorization: Bearer <key>` or as `x-api-key: <key>` (what model SDKs send).
key_gate.py checks it (`identify`) before the body is read and leaves the Caller in the request scope,
where the route dependencies find it; the security schemes stay on the dependencies, so /openapi.json
says how each operation takes its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.core import keys
from services.core.audit import Actor
from services.core.db.engine import autocommit
from services.core.errors import Forbidden, Unauthenticated
from services.core.keys import Role
from services.gateway.deps import GatewayServices, ServicesDep

_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer lk_...")
_api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="an API key, as SDKs send it")


@dataclass(frozen=True)
class Caller:
    """The key behind a request. `root` says its tenant is the deployment's own (settings.tenant)."""

    key_id: str
    tenant_id: str
    role: Role
    root: bool

    @property
    def actor(self) -> Actor:
        return Actor(self.tenant_id, self.key_id)


def presented_key(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthenticated(
            "this needs an API key: send Authorization: Bearer <key> or x-api-key: <key>",
            code="missing_api_key",
        )
    return key.strip()


CALLER_SCOPE_KEY = "loopd.caller"


async def identify(services: GatewayServices, request: Request) -> Caller:
    """The caller of `request` from its headers alone, counted against its key's rate limit; raises
    Unauthenticated (or RateLimited). Never reads the body."""
    key = presented_key(await _bearer(request), await _api_key_header(request))
    record = None
    if keys.looks_like_key(key):
        async with autocommit(services.engine).connect() as conn:
            record = await keys.find_by_key(conn, key)
    if record is None:
        raise Unauthenticated("the API key is not known", code="invalid_api_key")
    refusal = record.refusal(datetime.now(UTC))
    if refusal is not None:
        raise Unauthenticated(f"the API key is {refusal.removeprefix('api_key_')}", code=refusal)
    caller = Caller(record.id, record.tenant_id, record.role, record.tenant_id == services.settings.tenant)
    if services.limiter is not None:
        await services.limiter.hit(caller.key_id, writes=request.method not in ("GET", "HEAD", "OPTIONS"))
    return caller


async def authenticate(
    request: Request,
    services: ServicesDep,
    # Only for the document: the gate has read both headers already.
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    __: Annotated[str | None, Depends(_api_key_header)],
) -> Caller:
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if isinstance(caller, Caller):
        return caller
    # A route outside the gate's prefixes still gets its caller checked, after its body.
    return await identify(services, request)


async def still_usable(services: GatewayServices, caller: Caller) -> bool:
    """Whether the caller's key works now: a stream asks now and then, as it outlives its request."""
    async with autocommit(services.engine).connect() as conn:
        record = await keys.find_by_id(conn, caller.key_id)
    return record is not None and record.refusal(datetime.now(UTC)) is None


def _needs(role: Role):  # type: ignore[no-untyped-def]
    async def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not caller.role.allows(role):
            raise Forbidden(
                f"this needs a key with the {role} role; this key is a {caller.role}", code="forbidden"
            )
        return caller

    return check


Viewer = Annotated[Caller, Depends(_needs(Role.VIEWER))]
Member = Annotated[Caller, Depends(_needs(Role.MEMBER))]
Admin = Annotated[Caller, Depends(_needs(Role.ADMIN))]


def require_root(caller: Caller) -> None:
    """Tenants are the deployment's business: only admins of the root tenant manage them."""
    if not caller.root:
        raise Forbidden("only admins of the deployment's root tenant manage tenants", code="forbidden")
