"""The worker's call slots: at most `total` tool calls run at once; the rest wait their turn.

A call may name shares it belongs to (the tree of a run and its sub-agents, a tenant), each with the
most slots its calls may hold at once. A share at its limit waits while calls of other shares take
the free slots, so one tree or tenant cannot take a worker's every slot while others wait. Waiting
calls are served in arrival order among those whose shares have room.

A stopping worker closes its slots: the calls still waiting, and any that come after, are handed
back (HandsStopping) so the caller can take them to another worker; calls holding a slot go on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from services.core.errors import HandsStopping


@dataclass(frozen=True)
class Share:
    key: str
    limit: int


class Ticket:
    """A call's place in the queue: `granted` once it holds a slot, `release` to give it back or leave."""

    def __init__(self, slots: Slots, shares: Sequence[Share]) -> None:
        self.shares = tuple(shares)
        self._slots = slots
        self._granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._released = False

    async def granted(self, within: float | None = None) -> bool:
        """Wait up to `within` seconds for the slot; whether the call holds it now. Raises
        HandsStopping once the slots are closed, unless the call already held its slot."""
        if not self._granted.done():
            try:
                async with asyncio.timeout(within):
                    await asyncio.shield(self._granted)
            except TimeoutError:
                return False
        self._granted.result()  # raises for a call that was handed back
        return True

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots._leave(self)

    def _grant(self) -> None:
        self._granted.set_result(None)

    def _refuse(self, reason: str) -> None:
        self._granted.set_exception(HandsStopping(reason))

    @property
    def holds(self) -> bool:
        return self._granted.done() and self._granted.exception() is None


class Slots:
    def __init__(self, total: int) -> None:
        self.total = total
        self._in_use = 0
        self._held: Counter[str] = Counter()
        self._waiting: list[Ticket] = []
        self._closed: str | None = None  # why, once closed

    @property
    def free(self) -> int:
        return self.total - self._in_use

    @property
    def waiting(self) -> int:
        """Calls queued for a slot: with the busy slots, the worker's load (what autoscaling reads)."""
        return len(self._waiting)

    def held(self, key: str) -> int:
        """Slots the calls of one share hold now."""
        return self._held[key]

    def share(self, key: str, fraction: float) -> Share:
        """A share that may hold `fraction` of the slots (at least one)."""
        return Share(key, max(1, int(fraction * self.total)))

    def ticket(self, shares: Sequence[Share] = ()) -> Ticket:
        """Queue a call; it may hold its slot at once. Release the ticket in every case."""
        ticket = Ticket(self, shares)
        if self._closed is not None:
            ticket._refuse(self._closed)
            return ticket
        self._waiting.append(ticket)
        self._serve()
        return ticket

    def close(self, reason: str) -> None:
        """Take no more calls: every call still waiting, and every later one, is handed back."""
        self._closed = self._closed or reason
        waiting, self._waiting = self._waiting, []
        for ticket in waiting:
            ticket._refuse(self._closed)

    @asynccontextmanager
    async def hold(self, shares: Sequence[Share] = ()) -> AsyncIterator[None]:
        ticket = self.ticket(shares)
        try:
            await ticket.granted()
            yield
        finally:
            ticket.release()

    def _fits(self, ticket: Ticket) -> bool:
        return self._in_use < self.total and all(self._held[s.key] < s.limit for s in ticket.shares)

    def _serve(self) -> None:
        for ticket in list(self._waiting):
            if self._in_use >= self.total:
                return
            if self._fits(ticket):
                self._waiting.remove(ticket)
                self._in_use += 1
                self._held.update(s.key for s in ticket.shares)
                ticket._grant()

    def _leave(self, ticket: Ticket) -> None:
        if ticket.holds:
            self._in_use -= 1
            self._held.subtract(s.key for s in ticket.shares)
            self._held += Counter()  # drops the keys that reached zero
        elif ticket in self._waiting:  # not so for a call the closed slots handed back
            self._waiting.remove(ticket)
        self._serve()
