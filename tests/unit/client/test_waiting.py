"""What a waiting run waits for, in words, with the command that unblocks it."""

from __future__ import annotations

from typing import Any

import pytest
from loopd.waiting import waiting_lines


@pytest.mark.parametrize(
    ("waiting_for", "line"),
    [
        (
            {
                "type": "approval",
                "call_ids": ["c1"],
                "calls": [{"call_id": "c1", "name": "bash", "input": {"command": "make deploy"}}],
            },
            "waiting for approval of call c1 (bash: make deploy)"
            " → loopd approve r1 c1  (or: loopd deny r1 c1 -m REASON)",
        ),
        (
            {"type": "approval", "call_ids": ["c1"]},
            "waiting for approval of call c1 → loopd approve r1 c1  (or: loopd deny r1 c1 -m REASON)",
        ),
        (
            {"type": "input", "call_id": "c2", "question": "Which branch?", "schema": {"type": "string"}},
            "waiting for an answer to call c2: Which branch? → loopd reply r1 ANSWER",
        ),
        (
            {
                "type": "input",
                "call_id": "c2",
                "question": "How many?",
                "schema": {"type": "integer", "minimum": 1},
            },
            "waiting for an answer to call c2: How many?"
            ' → loopd reply r1 --json JSON  (matching {"type":"integer","minimum":1})',
        ),
        (
            {"type": "budget", "limit": "max_tokens", "used": 100_412, "allowed": 100_000},
            "waiting for a budget raise: max_tokens reached (100412 of 100000 tokens)"
            " → loopd budget r1 --max-tokens 200000",
        ),
        (
            {"type": "budget", "limit": "max_cost_usd", "used": 0.2513, "allowed": 0.25},
            "waiting for a budget raise: max_cost_usd reached (0.2513 of 0.25 USD)"
            " → loopd budget r1 --max-cost-usd 0.5",
        ),
        (
            {"type": "budget", "limit": "max_wall_time", "used": 3601.5, "allowed": 3600},
            "waiting for a budget raise: max_wall_time reached (3601.5 of 3600 s)"
            " → loopd budget r1 --max-wall-time 7200",
        ),
        (
            {
                "type": "tool_result",
                "call_ids": ["c3"],
                "calls": [{"call_id": "c3", "name": "crm_lookup", "input": {"email": "a@b.c"}}],
            },
            'waiting for the result of client tool call c3 (crm_lookup: {"email":"a@b.c"})'
            " → loopd tool-result r1 c3 --output TEXT",
        ),
        (
            {"type": "child", "call_id": "c4", "child_run_id": "r2"},
            "waiting for child run r2 (call c4) → loopd logs r2 --follow",
        ),
        ({"type": "interrupt"}, "waiting for a message after an interrupt → loopd send r1 MESSAGE"),
        (
            {
                "type": "quota",
                "quota": "monthly_tokens",
                "used": 1_000_412,
                "allowed": 1_000_000,
                "resets_at": "2026-01-01T00:00:00+00:00",
            },
            "waiting for the tenant's monthly quota: monthly_tokens reached (1000412 of 1000000 tokens)"
            " until 2026-01-01 00:00 UTC"
            " → a root admin: loopd tenants update TENANT --monthly-tokens 2000000",
        ),
        (
            {
                "type": "quota",
                "quota": "monthly_cost_usd",
                "used": 10.25,
                "allowed": 10,
                "resets_at": "2026-02-01T00:00:00Z",
            },
            "waiting for the tenant's monthly quota: monthly_cost_usd reached (10.25 of 10 USD)"
            " until 2026-02-01 00:00 UTC → a root admin: loopd tenants update TENANT --monthly-cost-usd 20",
        ),
        ({"type": "quorum", "votes": 2}, 'waiting for quorum {"votes":2}'),
    ],
)
def test_each_kind_of_wait_reads_as_one_line_with_its_command(waiting_for: dict[str, Any], line: str) -> None:
    assert waiting_lines(waiting_for, "r1") == [line]


def test_a_run_id_a_shell_would_split_is_quoted_and_an_unknown_one_is_a_placeholder() -> None:
    assert waiting_lines({"type": "interrupt"}, "run 1")[0].endswith("loopd send 'run 1' MESSAGE")
    assert waiting_lines({"type": "interrupt"})[0].endswith("loopd send RUN MESSAGE")


def test_every_call_waiting_for_approval_gets_its_own_line() -> None:
    lines = waiting_lines({"type": "approval", "call_ids": ["a", "b", "c"]}, "r1")
    assert [line.split("→ ")[1].split()[:4] for line in lines] == [
        ["loopd", "approve", "r1", call] for call in ("a", "b", "c")
    ]
