"""How many tries a tool call gets on hands: the run's retry budget, and a bounded wait for workers
that are listed but cannot be reached.

A try that reached a worker (which then died, lost the sandbox or stopped) spends one of the run's
`RetryPolicy.max_attempts`. A try that never reached one (HandsUnreachable: nothing ran) does not:
a network fault between this brain and every worker would otherwise spend the whole budget in its
first seconds and fail runs that the healed link would have finished. Those tries go on for at most
`hands_wait_seconds` in a row, so a brain that stays cut off still ends the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import RetryCallState

from services.core.errors import HandsUnreachable


class CallAttempts:
    """A tenacity stop condition; `spent` is the tries counted against the run's budget so far."""

    def __init__(
        self, max_attempts: int, unreachable_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_attempts = max_attempts
        self.unreachable_seconds = unreachable_seconds
        self.spent = 0
        self._clock = clock
        self._unreachable_since: float | None = None

    def __call__(self, retry_state: RetryCallState) -> bool:
        """Whether to stop after the try that just failed."""
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, HandsUnreachable):
            now = self._clock()
            if self._unreachable_since is None:
                self._unreachable_since = now
            return now - self._unreachable_since >= self.unreachable_seconds
        self._unreachable_since = None
        self.spent += 1
        return self.spent >= self.max_attempts

    def last(self) -> bool:
        """Whether the try under way is the budget's last one (for a result that asks to be retried)."""
        return self.spent + 1 >= self.max_attempts
