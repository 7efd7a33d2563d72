"""A brain's cache of the run states it folded last, so a run's next wake-up reads only the events
appended since, instead of its whole log: the cost of a turn does not grow with the run's length.

It is only an optimisation. A cached state is continued from its own last seq, and the log is
append-only, so the continuation equals a fresh fold. A state is cached only after a drive ended
normally (everything it changed locally was committed), and dropped on any failure.
"""

from __future__ import annotations

from collections import OrderedDict

from services.brain.context import RunState


class StateCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, RunState] = OrderedDict()

    def take(self, run_id: str) -> RunState | None:
        """The cached state of a run, removed from the cache while a drive owns it."""
        return self._states.pop(run_id, None)

    def keep(self, state: RunState) -> None:
        self._states[state.run_id] = state
        self._states.move_to_end(state.run_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)
