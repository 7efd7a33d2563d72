"""The egress proxy's decisions on a call's result, as the events committed with that result.

They are appended in the same fenced transaction as the call's `tool.result` (brain/committer.py):
with it, gapless, or not at all. A result once committed is never asked for again, so no decision is
committed twice; what a replayed result carries of its decisions is the hands worker's record.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.core import events as event_log
from services.core import payloads
from services.hands.contract.api import ExecuteResult


def egress_events(call_id: str, result: ExecuteResult) -> list[event_log.NewEvent]:
    found: list[event_log.NewEvent] = []
    for decision in result.egress:
        at = datetime.fromtimestamp(decision.at, UTC).isoformat()
        common = {
            "call_id": call_id,
            "host": decision.host,
            "port": decision.port,
            "bytes_sent": decision.bytes_sent,
            "bytes_received": decision.bytes_received,
            "at": at,
        }
        if decision.allowed:
            found.append(event_log.NewEvent.of(payloads.EgressAllowed.parse(common)))
        else:
            denied = payloads.EgressDenied.parse({**common, "reason": decision.reason or "not_allowed"})
            found.append(event_log.NewEvent.of(denied))
    return found
