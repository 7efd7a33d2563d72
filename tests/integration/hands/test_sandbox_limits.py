"""Every call is bounded: timeouts kill the whole process tree, output is capped, the sandbox survives."""

from __future__ import annotations

import time

import pytest

from services.hands.contract.client import HandsClient
from tests.integration.hands.calls import bash, new_run
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


async def test_timeout_kills_a_sleeping_command_and_the_sandbox_stays_usable(hands: HandsClient) -> None:
    run_id = new_run()
    started = time.monotonic()

    result = await bash(hands, run_id, "echo before; sleep 1000", timeout=1.0)
    elapsed = time.monotonic() - started
    after = await bash(hands, run_id, "echo after")

    assert result.error == "timeout" and not result.ok
    assert result.output.startswith("before\n")
    assert "1s" in (result.error_message or "")
    assert elapsed < 6.0
    assert after.ok and after.output == "after\n"
    assert after.sandbox_id == result.sandbox_id and not after.sandbox_created


async def test_timeout_stops_a_fork_bomb(hands: HandsClient) -> None:
    run_id = new_run()
    started = time.monotonic()

    result = await bash(hands, run_id, ":(){ :|:& };:", timeout=2.0)
    elapsed = time.monotonic() - started
    after = await bash(hands, run_id, "ps -e --no-headers | wc -l")

    assert result.error == "timeout"
    assert elapsed < 10.0
    assert after.ok, after.output
    # Left: the sandbox's init, and this call's relay, bash, ps and wc.
    assert int(after.output) <= 5


async def test_timeout_kills_processes_that_left_the_process_group(hands: HandsClient) -> None:
    run_id = new_run()

    result = await bash(hands, run_id, "setsid sleep 1000 & setsid sleep 1001 & wait", timeout=1.0)
    after = await bash(hands, run_id, "pgrep -c sleep || true")

    assert result.error == "timeout"
    assert after.output.strip() == "0"


async def test_a_call_ends_when_its_output_closes_even_with_background_jobs(hands: HandsClient) -> None:
    run_id = new_run()
    started = time.monotonic()

    result = await bash(hands, run_id, "sleep 100 > /dev/null 2>&1 & echo started")

    assert result.ok and result.output == "started\n"
    assert time.monotonic() - started < 5.0


async def test_output_is_capped_and_says_so(hands: HandsClient) -> None:
    result = await bash(hands, new_run(), "yes | head -c 5000000")

    assert result.ok
    assert result.truncated
    assert len(result.output.encode()) < 1024 * 1024 + 200
    assert result.output.endswith("[output truncated: only the first 1048576 bytes are shown]")


async def test_nonzero_exit_is_reported_with_its_code(hands: HandsClient) -> None:
    result = await bash(hands, new_run(), "echo oops >&2; exit 3")

    assert not result.ok
    assert result.error == "nonzero_exit" and result.exit_code == 3
    assert result.output == "oops\n[exit code 3]"
