"""Secrets: set (sealed before it reaches the database), read their names and times, delete.

A value goes in and never comes out: no response, audit entry or log line holds it, sealed or not.
Environments put secrets on their runs' requests to one host (docs/environments.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.core import audit, secrets
from services.core.db.engine import autocommit
from services.core.environment_spec import SECRET_NAME
from services.core.secret_box import SecretBox
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, errors
from services.gateway.responses import Deleted, Secret, SecretList

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])

VALUE_MAX_BYTES = 64 * 1024
SecretName = Annotated[str, Path(pattern=SECRET_NAME, description="a secret's name")]


class SetSecret(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    value: SecretStr = Field(description=f"the secret, at most {VALUE_MAX_BYTES} bytes of UTF-8")

    @field_validator("value")
    @classmethod
    def _sized(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value().encode())
        if size == 0 or size > VALUE_MAX_BYTES:
            raise ValueError(f"a secret is 1 to {VALUE_MAX_BYTES} bytes")
        return value


@router.put("/{name}", response_model=Secret, responses=errors(*BODY_ERRORS, 404))
async def set_secret(
    name: SecretName, body: SetSecret, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    """Create or replace the secret; runs already started get the new value on their next sandbox."""
    sealed = SecretBox.from_settings(services.settings).seal(body.value.get_secret_value())
    async with services.engine.begin() as conn:
        row, created = await secrets.put(conn, caller.tenant_id, name, sealed)
        action = "secret.created" if created else "secret.updated"
        await audit.record(conn, caller.actor, action, "secret", name)
    return secrets.secret_to_wire(row)


@router.get("", response_model=SecretList, responses=errors(422))
async def list_secrets(caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows = await secrets.list_names(conn, caller.tenant_id)
    return {"data": [secrets.secret_to_wire(row) for row in rows]}


@router.get("/{name}", response_model=Secret, responses=errors(404, 422))
async def get_secret(name: SecretName, caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        return secrets.secret_to_wire(await secrets.get(conn, caller.tenant_id, name))


@router.delete("/{name}", response_model=Deleted, responses=errors(404, 409, 422))
async def delete_secret(name: SecretName, caller: Member, services: ServicesDep) -> dict[str, Any]:
    """A secret the latest version of an unarchived environment names is refused (409 secret_in_use)."""
    async with services.engine.begin() as conn:
        await secrets.delete(conn, caller.tenant_id, name)
        await audit.record(conn, caller.actor, "secret.deleted", "secret", name)
    return {"id": name, "deleted": True}
