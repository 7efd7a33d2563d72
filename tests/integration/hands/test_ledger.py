"""Every CallLedger backend keeps the first result recorded for a call, per run: in memory, on a
filesystem and in an object store (a real S3 server)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from services.core.settings import Settings
from services.hands.contract.api import ExecuteResult
from services.hands.workspace.ledger import CallLedger, build_ledger, decode, encode
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from tests.integration.core.test_artifact_store_contract import settings_of
from tests.unit.hands.memory_ledger import MemoryLedger

RESULT = ExecuteResult(True, "ok\n", 0, None, None, False, 12, "sb-1", True, snapshot_after="a" * 64)
OTHER = dataclasses.replace(RESULT, output="other\n", snapshot_after="b" * 64)


@pytest.fixture(params=["memory", "filesystem", "s3"])
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], CallLedger]:
    if request.param == "memory":
        shared = MemoryLedger()
        return lambda: shared
    if request.param == "s3":
        settings = settings_of(request.getfixturevalue("s3_env"))
    else:
        settings = Settings(artifacts_dir=tmp_path / "artifacts")
    return lambda: build_ledger(settings)


async def test_a_recorded_result_is_found_again(make_ledger: Callable[[], CallLedger]) -> None:
    ledger = make_ledger()
    assert await ledger.get("run-1", "call-1") is None

    assert await ledger.put("run-1", "call-1", RESULT) == RESULT

    assert await make_ledger().get("run-1", "call-1") == RESULT
    assert await ledger.get("run-1", "call-2") is None
    assert await ledger.get("run-2", "call-1") is None


async def test_binary_output_is_recorded_exactly(make_ledger: Callable[[], CallLedger]) -> None:
    binary = dataclasses.replace(RESULT, output="PK\\x00\\xff", output_bytes=b"PK\x00\xff")
    await make_ledger().put("run-1", "call-b", binary)

    assert await make_ledger().get("run-1", "call-b") == binary
    assert decode(encode(binary)) == binary


async def test_the_first_result_recorded_wins(make_ledger: Callable[[], CallLedger]) -> None:
    ledger = make_ledger()
    await ledger.put("run-1", "call-1", RESULT)

    assert await make_ledger().put("run-1", "call-1", OTHER) == RESULT
    assert await ledger.get("run-1", "call-1") == RESULT


@pytest.mark.parametrize("odd", ["", ".", "..", "../escape", "a/b", "x" * 300, "caf\u00e9", "~abc"])
async def test_any_id_is_a_key_of_its_own(make_ledger: Callable[[], CallLedger], odd: str) -> None:
    ledger = make_ledger()
    await ledger.put(odd, odd, RESULT)
    await ledger.put("run-1", "call-1", OTHER)

    assert await ledger.get(odd, odd) == RESULT
    assert await ledger.get("run-1", "call-1") == OTHER


def test_the_filesystem_ledger_keeps_plain_ids_readable(tmp_path: Path) -> None:
    ledger = FilesystemLedger(tmp_path)

    assert ledger.path_of("run-1", "call_0_1") == tmp_path / "run-1" / "call_0_1.json"
    assert ledger.path_of("../x", "a").parent.parent == tmp_path


async def test_the_snapshots_results_end_at_are_listed(make_ledger: Callable[[], CallLedger]) -> None:
    ledger = make_ledger()
    await ledger.put("run-1", "call-1", RESULT)
    await ledger.put("run-2", "call-1", OTHER)
    await ledger.put("run-2", "call-2", dataclasses.replace(RESULT, snapshot_after=None))

    assert await make_ledger().snapshots() == {"a" * 64, "b" * 64}


async def test_two_workers_recording_one_call_at_once_agree(make_ledger: Callable[[], CallLedger]) -> None:
    first, second = make_ledger(), make_ledger()

    recorded = await asyncio.gather(
        first.put("run-1", "call-1", RESULT), second.put("run-1", "call-1", OTHER)
    )

    assert recorded[0] == recorded[1] == await first.get("run-1", "call-1")


def test_a_recorded_result_from_a_newer_worker_still_decodes() -> None:
    data = encode(RESULT).replace(b'"replayed":false', b'"replayed":false,"added_later":1')

    assert decode(data) == RESULT
