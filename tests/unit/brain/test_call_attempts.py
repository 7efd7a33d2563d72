"""A tool call's tries: tries that reached a worker spend the run's budget; tries that never reached
one go on for a bounded while instead."""

from __future__ import annotations

from tenacity import RetryCallState

from services.brain.call_attempts import CallAttempts
from services.core.errors import HandsUnavailable, HandsUnreachable, SandboxLost


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failed(error: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_exception((type(error), error, None))
    return state


def test_tries_that_reached_a_worker_spend_the_budget() -> None:
    attempts = CallAttempts(3, unreachable_seconds=60, clock=Clock())

    assert not attempts(failed(HandsUnavailable("died mid-call")))
    assert not attempts(failed(SandboxLost("gone")))
    assert attempts.last()
    assert attempts(failed(HandsUnavailable("died again")))


def test_tries_that_never_reached_a_worker_spend_nothing_for_a_bounded_while() -> None:
    clock = Clock()
    attempts = CallAttempts(2, unreachable_seconds=60, clock=clock)

    for _ in range(50):
        assert not attempts(failed(HandsUnreachable("connection refused")))
        clock.now += 1
    assert attempts.spent == 0 and not attempts.last()
    clock.now = 60
    assert attempts(failed(HandsUnreachable("connection refused")))


def test_a_worker_reached_again_starts_the_wait_anew() -> None:
    clock = Clock()
    attempts = CallAttempts(5, unreachable_seconds=10, clock=clock)

    assert not attempts(failed(HandsUnreachable("cut")))
    clock.now = 9
    assert not attempts(failed(HandsUnavailable("reached, then lost")))
    clock.now = 15
    assert not attempts(failed(HandsUnreachable("cut again")))
    clock.now = 24
    assert not attempts(failed(HandsUnreachable("still cut")))
    clock.now = 25
    assert attempts(failed(HandsUnreachable("cut for 10 s")))
    assert attempts.spent == 1
