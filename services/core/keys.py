"""API keys: minted, looked up by hash, listed and revoked. Every statement on `api_keys` lives here.

A key is `lk_` and 256 random bits, shown once when made; only its SHA-256 is stored. Lookups read the
table on every request, so a revocation holds on the next request at every gateway.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import api_keys
from services.core.errors import NotFound

KEY_PREFIX = "lk_"
_SHOWN_CHARS = 8  # of the random part, kept as `prefix` so people can tell their keys apart


class Role(StrEnum):
    """What a key may do in its tenant; each role may do all that the roles below it may."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class KeyRecord:
    """A key as the gateway checks it: never the key itself."""

    id: str
    tenant_id: str
    role: Role
    expires_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why this key may not be used now (an error code), or None."""
        if self.revoked_at is not None:
            return "api_key_revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "api_key_expired"
        return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX) and 16 <= len(text) <= 128 and text.isascii()


def mint() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    name: str,
    role: Role,
    created_by: str | None,
    expires_at: datetime | None = None,
) -> tuple[Row[Any], str]:
    """A new key of the tenant's, and the key itself: the only time it exists outside its holder."""
    key = mint()
    values = _values(key, tenant_id=tenant_id, name=name, role=role, created_by=created_by)
    row = (
        await conn.execute(insert(api_keys).values(**values, expires_at=expires_at).returning(api_keys))
    ).one()
    return row, key


async def ensure_key(conn: AsyncConnection, key: str, *, tenant_id: str, name: str, role: Role) -> bool:
    """Stores a key an operator chose (LOOPD_ADMIN_KEY) unless it is there: True when it was added.

    Its id comes from its hash, so gateways starting side by side agree on one row. A key revoked
    once stays revoked: the operator must choose a new one.
    """
    values = _values(key, tenant_id=tenant_id, name=name, role=role, created_by=None)
    values["id"] = configured_key_id(key)
    statement = insert(api_keys).values(**values).on_conflict_do_nothing().returning(api_keys.c.id)
    return (await conn.execute(statement)).first() is not None


def configured_key_id(key: str) -> str:
    return "key_" + hash_key(key)[:20]


def _values(key: str, *, tenant_id: str, name: str, role: Role, created_by: str | None) -> dict[str, Any]:
    return {
        "id": f"key_{secrets.token_hex(10)}",
        "tenant_id": tenant_id,
        "name": name,
        "role": role.value,
        "prefix": key[: len(KEY_PREFIX) + _SHOWN_CHARS],
        "key_hash": hash_key(key),
        "created_by": created_by,
    }


async def find_by_key(conn: AsyncConnection, key: str) -> KeyRecord | None:
    return await _find(conn, api_keys.c.key_hash == hash_key(key))


async def find_by_id(conn: AsyncConnection, key_id: str) -> KeyRecord | None:
    """A key already presented, looked at again (a stream it opened outlives its request)."""
    return await _find(conn, api_keys.c.id == key_id)


async def _find(conn: AsyncConnection, where: ColumnElement[bool]) -> KeyRecord | None:
    query = select(
        api_keys.c.id, api_keys.c.tenant_id, api_keys.c.role, api_keys.c.expires_at, api_keys.c.revoked_at
    ).where(where)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return KeyRecord(row.id, row.tenant_id, Role(row.role), row.expires_at, row.revoked_at)


async def list_keys(conn: AsyncConnection, tenant_id: str, *, limit: int = 500) -> list[Row[Any]]:
    query = (
        select(api_keys)
        .where(api_keys.c.tenant_id == tenant_id)
        .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        .limit(limit)
    )
    return list(await conn.execute(query))


async def revoke(conn: AsyncConnection, tenant_id: str, key_id: str) -> Row[Any]:
    """Revokes one of the tenant's keys (again is a no-op); another tenant's key is not found."""
    found: Row[Any] | None = (
        await conn.execute(
            update(api_keys)
            .where(
                api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
            )
            .values(revoked_at=datetime.now(UTC))
            .returning(api_keys)
        )
    ).first()
    if found is None:
        found = (
            await conn.execute(
                select(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
            )
        ).first()
    if found is None:
        raise NotFound(f"key {key_id} not found", code="key_not_found")
    return found


def key_to_wire(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant": row.tenant_id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }
