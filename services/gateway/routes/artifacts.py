"""A run's artifacts: the files its workspace held when it ended, recorded as artifact.created events.

Names are matched exactly against the recorded ones, which escape bytes that are not UTF-8 (see
core/text.py: `escape_name`); nothing touches a filesystem by name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.convertors import PathConvertor, register_url_convertor

from services.core import events as event_log
from services.core import runs as run_store
from services.core.db.engine import autocommit
from services.core.errors import BadRequest, NotFound
from services.gateway.auth import Caller, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import RunId, errors
from services.gateway.responses import ArtifactList


class _AnyPath(PathConvertor):
    """Starlette's `path` stops at a newline (and drops a trailing one); file names may hold newlines."""

    regex = "(?s:.*)"


# Starlette looks convertors up by name when a route is declared, so this must precede the routes.
register_url_convertor("anything", _AnyPath())
router = APIRouter(prefix="/v1/runs/{run_id}/artifacts", tags=["artifacts"])


async def _artifacts(services: ServicesDep, caller: Caller, run_id: str) -> dict[str, dict[str, Any]]:
    async with autocommit(services.engine).connect() as conn:
        await run_store.get_run(conn, caller.tenant_id, run_id)
        found = await event_log.data_of_type(conn, run_id, event_log.ARTIFACT_CREATED)
    # A later turn of the run may export a file again; the newest version wins.
    return {artifact["path"]: artifact for artifact in found}


@router.get("", response_model=ArtifactList, responses=errors(404, 422))
async def list_artifacts(run_id: RunId, caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    found = await _artifacts(services, caller, run_id)
    return {"data": [{"path": a["path"], "size": a["size"], "sha256": a["sha256"]} for a in found.values()]}


@router.get(
    "/{path:anything}",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes; ETag and X-Content-SHA256 carry its sha256",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(400, 404, 422),
    },
)
async def download_artifact(
    run_id: RunId, path: str, caller: Viewer, services: ServicesDep
) -> StreamingResponse:
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in path:
        raise BadRequest(f"artifact path {path!r} is not a plain relative path", code="invalid_path")
    artifact = (await _artifacts(services, caller, run_id)).get(path)
    if artifact is None:
        raise NotFound(f"run {run_id} has no artifact {path!r}", code="artifact_not_found")
    return StreamingResponse(
        services.artifacts.stream(artifact["sha256"]),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(artifact["size"]),
            "ETag": f'"{artifact["sha256"]}"',
            "X-Content-SHA256": artifact["sha256"],
        },
    )
