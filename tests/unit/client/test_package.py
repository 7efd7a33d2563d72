"""The client package's public names, and that importing it (or its CLI) loads none of the server."""

from __future__ import annotations

import json
import subprocess
import sys

import loopd

PUBLIC = [
    "Agent",
    "ApiKey",
    "Artifact",
    "AsyncClient",
    "AuditEntry",
    "AuditPage",
    "AuditQuery",
    "Budget",
    "ChecksumMismatchError",
    "Client",
    "Event",
    "EventPage",
    "ForkedFrom",
    "HandsWorker",
    "LoopdAPIError",
    "LoopdConnectionError",
    "LoopdError",
    "NewApiKey",
    "NewTenant",
    "Page",
    "PendingCall",
    "ProtocolError",
    "ReconnectPolicy",
    "Run",
    "RunDiff",
    "SpecError",
    "Tenant",
    "TenantQuotas",
    "UnsafePathError",
    "Usage",
    "UsageReport",
    "WaitingFor",
]
SERVER_ONLY = ["services", "fastapi", "starlette", "sqlalchemy", "psycopg", "alembic", "redis", "grpc"]
SERVER_ONLY += ["docker", "uvloop", "uvicorn", "prometheus_client"]


def test_the_public_names_are_exactly_these() -> None:
    assert loopd.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(loopd, name) is not None


def test_importing_the_client_and_its_cli_loads_no_server_dependency() -> None:
    probe = "import json, sys, loopd, loopd.cli; print(json.dumps(sorted(sys.modules)))"
    # -I: neither the working directory nor PYTHONPATH may put the repository's packages in reach.
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    top_level = {name.partition(".")[0] for name in json.loads(loaded.stdout)}
    assert "loopd" in top_level
    assert sorted(top_level & set(SERVER_ONLY)) == []
