"""Liveness, readiness, the hands pool and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from services.core import runs as run_store
from services.core.bus import HandsInfo
from services.core.db.engine import autocommit, ping
from services.core.metrics import exposition
from services.gateway.auth import Viewer
from services.gateway.deps import ServicesDep
from services.gateway.errors import error_response
from services.gateway.params import errors
from services.gateway.responses import HandsList, Health, Readiness

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses=errors(503))
async def readyz(services: ServicesDep) -> Any:
    checks: dict[str, str] = {}
    try:
        await ping(services.engine)
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        await services.bus.ping()
        hands = await services.bus.list_hands()
        checks["bus"] = "ok"
        checks["hands"] = f"{len(hands)} workers" if hands else "no hands worker registered"
    except Exception as error:
        checks["bus"] = f"error: {type(error).__name__}"
        hands = []
    if checks["database"] == "ok" and checks["bus"] == "ok" and hands:
        return {"status": "ready", "checks": checks}
    response = error_response(503, "not_ready", "; ".join(f"{k}: {v}" for k, v in checks.items()))
    return response


@router.get("/v1/hands", response_model=HandsList, responses=errors(401, 403, 429))
async def list_hands(caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    """The pool's capacity. Addresses and the runs each worker holds stay internal: an address is
    where sandboxes take orders, and run ids are other people's work. `sandbox_count` counts the
    caller's tenant's sandboxes only."""
    workers = await services.bus.list_hands()
    async with autocommit(services.engine).connect() as conn:
        held = [run_id for info in workers for run_id in info.sandboxes]
        ours = await run_store.owned_by(conn, caller.tenant_id, held)
    return {"data": [_public(info, ours) for info in workers]}


def _public(info: HandsInfo, ours: set[str]) -> dict[str, Any]:
    return {
        "hands_id": info.hands_id,
        "slots_total": info.slots_total,
        "slots_free": info.slots_free,
        "sandbox_count": sum(1 for run_id in info.sandboxes if run_id in ours),
        "state": info.labels.get("state", "serving"),
        "started_at": info.started_at,
    }


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
