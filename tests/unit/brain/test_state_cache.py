"""The brain's state cache hands a run's state to one drive at a time and forgets the oldest first."""

from __future__ import annotations

from services.brain.context import RunState
from services.brain.state_cache import StateCache


def test_a_taken_state_is_gone_until_it_is_kept_again() -> None:
    cache = StateCache(capacity=10)
    cache.keep(RunState(run_id="run_a", last_seq=7))
    taken = cache.take("run_a")
    assert taken is not None and taken.last_seq == 7
    assert cache.take("run_a") is None  # a failed drive never returns a half-changed state


def test_the_least_recently_kept_state_is_evicted() -> None:
    cache = StateCache(capacity=2)
    for run_id in ("run_a", "run_b", "run_c"):
        cache.keep(RunState(run_id=run_id))
    assert cache.take("run_a") is None
    assert cache.take("run_b") is not None and cache.take("run_c") is not None


def test_capacity_zero_keeps_nothing() -> None:
    cache = StateCache(capacity=0)
    cache.keep(RunState(run_id="run_a"))
    assert cache.take("run_a") is None
