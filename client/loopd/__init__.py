"""Python client and command line for loopd, the self-hosted platform for long-running AI agents.

from loopd import Client

with Client("http://127.0.0.1:8080") as loopd:
    run = loopd.create_run("say hello", agent={"model": "openai/gpt-4o-mini"})
    for event in loopd.stream_events(run.id):
        print(event.seq, event.type)
        if event.type == "run.waiting":
            ...  # approve, deny, reply, raise_budget or submit_tool_result, then keep reading
"""

from loopd.async_client import AsyncClient
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
    Artifact,
    Budget,
    Event,
    EventPage,
    ForkedFrom,
    HandsWorker,
    Page,
    PendingCall,
    Run,
    RunDiff,
    Usage,
    WaitingFor,
)
from loopd.stream import ReconnectPolicy

__all__ = [
    "Agent",
    "Artifact",
    "AsyncClient",
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
    "Page",
    "PendingCall",
    "ProtocolError",
    "ReconnectPolicy",
    "Run",
    "RunDiff",
    "SpecError",
    "UnsafePathError",
    "Usage",
    "WaitingFor",
]
