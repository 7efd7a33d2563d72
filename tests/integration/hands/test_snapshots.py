"""Snapshots of a real sandbox's /workspace: restored byte for byte, taken after every mutating call.

A workspace is compared through a listing made inside the sandbox: every entry's type, mode, owner,
size, name and link target, and every file's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.core.artifacts import ArtifactStore
from services.core.settings import Settings
from services.hands.contract.api import ReleaseRequest, SnapshotMissing
from services.hands.contract.client import HandsClient
from services.hands.contract.manifest import EMPTY_SNAPSHOT
from tests.integration.hands.calls import bash, call, new_run, request, send, starting_at
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]

LISTING = (
    "find . -mindepth 1 -printf '%y %m %U:%G %s %p -> %l\\n' | LC_ALL=C sort;"
    " find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum"
)
BUILD = r"""
mkdir -p deep/er/est empty-dir locked
printf 'bin\000ary\n' > deep/er/est/data.bin
: > empty.txt
printf '#!/bin/sh\necho ran\n' > run.sh && chmod 755 run.sh
printf 'secret\n' > locked/inner.txt && chmod 500 locked
ln -s deep/er/est/data.bin link
ln -s /nowhere dangling
printf 'accent\n' > 'café and spaces.txt'
printf 'long\n' > "$(printf 'n%.0s' $(seq 150))"
"""
CHANGE = r"""
rm -rf deep
echo changed > empty.txt
chmod 644 run.sh
chmod 700 locked && echo more >> locked/inner.txt && chmod 000 locked
ln -sfn elsewhere link
echo new > new.txt
"""


async def test_a_restored_workspace_equals_the_snapshot_byte_for_byte(hands: HandsClient) -> None:
    run_id = new_run()
    built = await bash(hands, run_id, BUILD + LISTING)
    assert built.ok, built.output
    changed = await bash(hands, run_id, CHANGE)
    assert changed.ok and changed.snapshot_after != built.snapshot_after

    at_built = built.snapshot_after
    in_place = await send(
        hands, starting_at(request(run_id, "bash", {"command": LISTING + "; ./run.sh"}), at_built)
    )
    await hands.release(ReleaseRequest(run_id))
    fresh = await send(hands, starting_at(request(run_id, "bash", {"command": LISTING}), at_built))

    assert in_place.ok and in_place.output == built.output + "ran\n"
    assert not in_place.sandbox_created and in_place.sandbox_id == changed.sandbox_id
    assert fresh.ok and fresh.output == built.output and fresh.sandbox_created
    # Listing changes nothing, so the content-addressed id comes out the same.
    assert in_place.snapshot_after == fresh.snapshot_after == built.snapshot_after
    owner = Settings().sandbox_user
    assert f"l 777 {owner} 20 ./link -> deep/er/est/data.bin" in built.output
    assert f"f 755 {owner} 19 ./run.sh" in built.output and "d 500" in built.output


async def test_read_only_tools_report_the_snapshot_they_ran_on(hands: HandsClient) -> None:
    run_id = new_run()

    listed_empty = await call(hands, run_id, "list_files")
    wrote = await call(hands, run_id, "write_file", path="a.txt", content="a\n")
    read = await call(hands, run_id, "read_file", path="a.txt")

    assert listed_empty.snapshot_after == EMPTY_SNAPSHOT
    assert wrote.snapshot_after not in (None, EMPTY_SNAPSHOT)
    assert read.ok and read.output == "a\n" and read.snapshot_after == wrote.snapshot_after


async def test_failed_and_timed_out_calls_are_snapshotted_too(hands: HandsClient) -> None:
    run_id = new_run()

    failed = await bash(hands, run_id, "echo partial > partial.txt; exit 3")
    timed_out = await bash(hands, run_id, "echo begun > begun.txt; sleep 30", timeout=1)
    await hands.release(ReleaseRequest(run_id))
    seen = await bash(hands, run_id, "cat partial.txt begun.txt")

    assert failed.error == "nonzero_exit" and failed.snapshot_after != EMPTY_SNAPSHOT
    assert timed_out.error == "timeout" and timed_out.snapshot_after != failed.snapshot_after
    assert seen.sandbox_created and seen.output == "partial\nbegun\n"


async def test_a_snapshot_with_a_missing_blob_fails_clearly(
    hands: HandsClient, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    run_id = new_run()
    content = f"only here {run_id}\n"
    wrote = await call(hands, run_id, "write_file", path="kept.txt", content=content)
    digest = hashlib.sha256(content.encode()).hexdigest()
    assert await artifacts.exists(digest)
    (tmp_path / "artifacts" / digest[:2] / digest).unlink()
    await hands.release(ReleaseRequest(run_id))

    with pytest.raises(SnapshotMissing) as missing:
        await send(hands, starting_at(request(run_id, "bash", {"command": "ls"}), wrote.snapshot_after))
    with pytest.raises(SnapshotMissing) as unknown:
        await send(hands, starting_at(request(run_id, "bash", {"command": "ls"}), "0" * 64))
    other = await bash(hands, new_run(), "echo still serving")

    assert missing.value.code == "snapshot_missing" and not missing.value.retryable
    assert digest in missing.value.message
    assert unknown.value.code == "snapshot_missing"
    assert other.ok
