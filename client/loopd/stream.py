"""The pure parts of following a run's SSE stream: decoding messages, remembering where to resume,
and pacing reconnects. The sync and async clients drive the connections themselves.

Persisted events have gapless seqs 1, 2, 3...; live-only deltas (`tool.output`) have none. After a
reconnect the server replays from `Last-Event-ID`, so the cursor drops anything already seen.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from httpx_sse import ServerSentEvent

from loopd.calls import parse
from loopd.errors import LoopdError, ProtocolError
from loopd.models import Event, Run


@dataclass(frozen=True)
class ReconnectPolicy:
    """How long to wait between attempts to reopen a dropped stream, and when to give up."""

    initial_delay: float = 0.5
    max_delay: float = 10.0
    # Consecutive attempts that fail to connect; a connection that opens resets the count.
    max_attempts: int = 10

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so many clients do not reconnect in lockstep."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** max(attempt - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)


class Backoff:
    """Counts consecutive failed attempts under a policy."""

    def __init__(self, policy: ReconnectPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def connected(self) -> None:
        self.failures = 0

    def next_delay(self, error: LoopdError) -> float:
        """Seconds to wait before the next attempt; re-raises `error` once attempts run out."""
        if not error.retryable:
            raise error
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            raise error
        asked = getattr(error, "retry_after", None)
        # A server that says when to come back (rate limits, a database restart) is taken at its word.
        return (
            max(asked, self.policy.delay(self.failures))
            if asked is not None
            else self.policy.delay(self.failures)
        )


class StreamCursor:
    """The last persisted seq delivered to the caller: what to skip, and where to resume."""

    def __init__(self, after: int = 0) -> None:
        self.last_seq = after

    def is_new(self, event: Event) -> bool:
        return event.seq is None or event.seq > self.last_seq

    def missing_before(self, event: Event) -> bool:
        """True when `event` skips past seqs that were never delivered."""
        return event.seq is not None and event.seq > self.last_seq + 1

    def advance(self, event: Event) -> None:
        if event.seq is not None and event.seq > self.last_seq:
            self.last_seq = event.seq


def decode_message(message: ServerSentEvent) -> Event | None:
    """The event carried by one SSE message, or None for a message without data."""
    if not message.data.strip():
        return None
    try:
        payload = json.loads(message.data)
    except ValueError:
        raise ProtocolError(f"stream message is not JSON: {message.data[:200]!r}") from None
    if not isinstance(payload, dict):
        raise ProtocolError(f"stream message is not an event object: {message.data[:200]!r}")
    # The seq comes from the JSON only: SSE carries the last `id:` over to messages without one,
    # so a live-only delta would otherwise inherit the seq of the event before it.
    payload.setdefault("type", message.event)
    return parse(Event, payload)


def stream_closed() -> LoopdError:
    """The error a stream that ended before its run did counts as, for backoff."""
    return LoopdError("the server closed the event stream", code="stream_closed", retryable=True)


def is_latest_end(run: Run, event: Event) -> bool:
    """Whether an end event is still the run's last word (a later message may have reopened it)."""
    if not run.is_terminal:
        return False
    return run.last_seq is None or event.seq is None or run.last_seq <= event.seq


def already_ended(after: int, run: Run) -> bool:
    """Whether a run ended with nothing after seq `after`, so a live stream would wait forever."""
    return run.is_terminal and run.last_seq is not None and run.last_seq <= after
