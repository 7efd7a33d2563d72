"""Replays the recorded event logs under tests/golden: folding each must still give the state and the
next actions recorded with it, so a change to the fold that reads an old log differently fails here.

The logs were recorded from real runs (tests/golden/record.py) and are never recorded again. A field
the state gained since a log was recorded is not compared; a recorded field the fold no longer gives is
a failure.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.brain.context import RunState, rebuild
from services.core import events as event_log
from tests.golden.record import FORMAT, GOLDEN, SCENARIOS, state_of, trail_of
from tests.unit.brain.loop import wire_event

LOGS = [
    pytest.param(document, log, id=f"{path.stem}/{log['name']}")
    for path in sorted(GOLDEN.glob("*.json"))
    for document in [json.loads(path.read_text())]
    for log in document["logs"]
]


def events_of(log: dict[str, Any]) -> list[event_log.Event]:
    return [wire_event(log["run_id"], event) for event in log["events"]]


def test_every_kind_of_run_has_a_recorded_log() -> None:
    assert sorted(path.stem for path in GOLDEN.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize(("document", "log"), LOGS)
def test_folding_a_recorded_log_gives_its_recorded_state(
    document: dict[str, Any], log: dict[str, Any]
) -> None:
    assert document["format"] == FORMAT
    folded = state_of(rebuild(log["run_id"], events_of(log)))

    missing = sorted(set(log["state"]) - set(folded))
    assert not missing, f"the fold no longer gives {missing}"
    assert {key: folded[key] for key in log["state"]} == log["state"]


@pytest.mark.parametrize(("document", "log"), LOGS)
def test_the_state_and_next_action_after_each_event_are_the_recorded_ones(
    document: dict[str, Any], log: dict[str, Any]
) -> None:
    trail = trail_of(log["run_id"], events_of(log))
    assert len(trail) == len(log["trail"])
    for event, step, recorded in zip(log["events"], trail, log["trail"], strict=True):
        missing = sorted(set(recorded) - set(step))
        assert not missing, f"the fold no longer gives {missing}"
        assert {key: step[key] for key in recorded} == recorded, f"after seq {event['seq']} ({event['type']})"


@pytest.mark.parametrize(("document", "log"), LOGS)
def test_a_fold_continued_from_any_point_equals_a_fold_from_the_start(
    document: dict[str, Any], log: dict[str, Any]
) -> None:
    events = events_of(log)
    whole = state_of(rebuild(log["run_id"], events))
    for split in range(len(events) + 1):
        partial = rebuild(log["run_id"], events[:split], RunState(run_id=log["run_id"]))
        assert state_of(rebuild(log["run_id"], events[split:], partial)) == whole, f"split at {split}"
