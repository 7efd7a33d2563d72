"""Python client and command line for loopd, the self-hosted platform for long-running AI agents.

from loopd import Client

with Client("http://127.0.0.1:8080") as loopd:
    run = loopd.create_run("say hello", agent={"model": "openai/gpt-4o-mini"})
    for event in loopd.stream_events(run.id):
        print(event.seq, event.type)
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
from loopd.models import Agent, Artifact, Event, EventPage, HandsWorker, Page, Run, Usage
from loopd.stream import ReconnectPolicy

__all__ = [
    "Agent",
    "Artifact",
    "AsyncClient",
    "ChecksumMismatchError",
    "Client",
    "Event",
    "EventPage",
    "HandsWorker",
    "LoopdAPIError",
    "LoopdConnectionError",
    "LoopdError",
    "Page",
    "ProtocolError",
    "ReconnectPolicy",
    "Run",
    "SpecError",
    "UnsafePathError",
    "Usage",
]
