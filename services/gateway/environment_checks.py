"""What the gateway checks before it stores an environment version, for loopd's API and the Managed
Agents view alike: that the deployment gives what the spec asks (core/environment_spec.check) and
that every secret it names exists, in the transaction that stores it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import secrets
from services.core.environment_spec import EnvironmentSpec, check
from services.core.errors import InvalidRequest
from services.core.settings import Settings


async def checked(
    conn: AsyncConnection, settings: Settings, tenant: str, spec: EnvironmentSpec
) -> dict[str, Any]:
    """The spec as stored, once the deployment gives what it asks and its secrets exist."""
    check(spec, settings, tenant)
    unknown = await secrets.missing(conn, tenant, spec.secret_names())
    if unknown:
        raise InvalidRequest(f"no secrets named {sorted(unknown)}", code="unknown_secret")
    return spec.model_dump(mode="json")
