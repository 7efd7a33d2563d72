"""Python client and command line for loopd, the self-hosted platform for long-running AI agents.

from loopd import Client

with Client("http://127.0.0.1:8080", api_key="lk_...") as loopd:
    run = loopd.create_run("say hello", agent={"model": "openai/gpt-4o-mini"})
    for event in loopd.stream_events(run.id):
        print(event.seq, event.type)
        if event.type == "run.waiting":
            ...  # approve, deny, reply, raise_budget or submit_tool_result, then keep reading
"""

from loopd.async_client import AsyncClient
from loopd.calls import AuditQuery
from loopd.client import Client
from loopd.errors import (
    ChecksumMismatchError,
    LoopdAPIError,
    LoopdConnectionError,
    LoopdError,
    ProtocolError,
    SpecError,
    UnsafePathError,
)
from loopd.models import (
    Agent,
    ApiKey,
    Artifact,
    AuditEntry,
    AuditPage,
    Budget,
    Event,
    EventPage,
    ForkedFrom,
    HandsWorker,
    NewApiKey,
    NewTenant,
    Page,
    PendingCall,
    Run,
    RunDiff,
    Tenant,
    TenantQuotas,
    Usage,
    UsageReport,
    WaitingFor,
)
from loopd.stream import ReconnectPolicy

__all__ = [
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
