"""One contract, two artifact stores: the filesystem and the object store (a real S3 server) behave the same.

Blobs are named by their content, large ones go in and come back in pieces, and a sweep removes only
what is neither live nor young.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.waiting import eventually
from services.core.artifacts import ArtifactStore, build_artifact_store
from services.core.errors import NotFound
from services.core.settings import Settings

MiB = 1024 * 1024
LARGE = 48 * MiB
# The object store's times are whole seconds: this much later, a blob written now is old.
LATER = 2.0


def settings_of(env: dict[str, str]) -> Settings:
    """Settings as a process given these LOOPD_ variables parses them."""
    return Settings.model_validate(
        {name.removeprefix("LOOPD_").lower(): value for name, value in env.items()}
    )


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "s3":
        return build_artifact_store(settings_of(request.getfixturevalue("s3_env")))
    return build_artifact_store(Settings(artifacts_dir=tmp_path / "artifacts"))


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The most memory Python held at once meanwhile, over every thread (in the list, on exit)."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


async def clock_past(instant: float) -> None:
    async def passed() -> bool:
        return time.time() >= instant

    await eventually(passed, timeout=10)


async def test_the_same_bytes_are_one_blob(store: ArtifactStore) -> None:
    data = b"a tool's long output\n" * 100

    first, second = await store.put(data), await store.put(data)

    assert first == second
    assert first.sha256 == hashlib.sha256(data).hexdigest() and first.size == len(data)
    assert await store.get(first.sha256) == data
    assert await store.exists(first.sha256)


async def test_a_missing_blob_is_not_found(store: ArtifactStore) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    stored = (await store.put(b"stored")).sha256

    assert not await store.exists(absent)
    for sha256 in (absent, "../../etc/passwd"):
        with pytest.raises(NotFound) as error:
            await store.get(sha256)
        assert error.value.code == "artifact_not_found"
        with pytest.raises(NotFound):
            _ = [chunk async for chunk in store.stream(sha256)]
    with pytest.raises(NotFound):
        await store.get_many([stored, absent])


async def test_many_small_blobs_go_in_and_come_back_in_order(store: ArtifactStore) -> None:
    contents = [f"file {n}\n".encode() for n in range(200)] + [b"", b"file 7\n"]

    refs = await store.put_many(contents)

    assert [ref.sha256 for ref in refs] == [hashlib.sha256(data).hexdigest() for data in contents]
    assert await store.get_many([ref.sha256 for ref in reversed(refs)]) == list(reversed(contents))


async def test_a_large_file_goes_in_and_comes_back_in_pieces(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    hasher = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(LARGE // MiB):
            chunk = os.urandom(MiB)
            hasher.update(chunk)
            out.write(chunk)

    with peak_memory() as stored_peak:
        ref = await store.put_file(source)
    hasher_back = hashlib.sha256()
    size = 0
    with peak_memory() as streamed_peak:
        async for chunk in store.stream(ref.sha256, MiB):
            assert len(chunk) <= MiB
            hasher_back.update(chunk)
            size += len(chunk)

    assert ref.sha256 == hasher.hexdigest() and ref.size == LARGE
    assert hasher_back.hexdigest() == ref.sha256 and size == LARGE
    # Neither way is the blob ever whole in memory: a few parts of it at most.
    assert stored_peak[0] < LARGE / 4, stored_peak
    assert streamed_peak[0] < LARGE / 8, streamed_peak
    assert await store.put_file(source) == ref


async def test_small_and_empty_blobs_stream_back_whole(store: ArtifactStore) -> None:
    small = await store.put(b"0123456789abcdef!")
    empty = await store.put(b"")

    chunks = [chunk async for chunk in store.stream(small.sha256, 5)]
    assert b"".join(chunks) == b"0123456789abcdef!" and max(map(len, chunks)) <= 5
    assert b"".join([chunk async for chunk in store.stream(empty.sha256)]) == b""
    first = b""
    async for chunk in store.stream(small.sha256, 4):
        first = chunk
        break
    assert first == b"0123"


async def test_a_touch_names_the_blobs_that_are_missing(store: ArtifactStore) -> None:
    stored = (await store.put(b"a content a snapshot names")).sha256
    absent = hashlib.sha256(b"collected long ago").hexdigest()

    assert await store.touch([stored, absent, "not-a-sha256"]) == {absent, "not-a-sha256"}
    assert await store.touch([]) == set()


async def test_a_sweep_removes_the_old_blobs_nothing_references(store: ArtifactStore) -> None:
    live = (await store.put(b"named by the event log")).sha256
    listed = (await store.put(b"named by a live manifest")).sha256
    dead = await store.put(b"the output of a result never committed" * 10)

    swept = await store.sweep({live, listed}, older_than=time.time() + 60)

    assert (swept.blobs, swept.bytes) == (1, dead.size)
    assert not await store.exists(dead.sha256)
    assert await store.get_many([live, listed]) == [b"named by the event log", b"named by a live manifest"]
    assert (await store.sweep({live, listed}, older_than=time.time() + 60)).blobs == 0


async def test_a_young_blob_stays_though_nothing_references_it(store: ArtifactStore) -> None:
    young = (await store.put(b"a snapshot being taken")).sha256

    swept = await store.sweep(set(), older_than=time.time() - 30)

    assert swept.blobs == 0
    assert await store.exists(young)


async def test_storing_or_touching_an_old_blob_makes_it_young(store: ArtifactStore) -> None:
    touched = (await store.put(b"named again by a new snapshot")).sha256
    stored_again = (await store.put(b"stored again by a new result")).sha256
    forgotten = (await store.put(b"named by nothing any more")).sha256
    await clock_past(time.time() + LATER)
    # A little before the touch: file times come from a coarser clock than time.time().
    cutoff = time.time() - LATER / 4

    assert await store.touch([touched]) == set()
    await store.put(b"stored again by a new result")
    swept = await store.sweep(set(), older_than=cutoff)

    assert swept.blobs == 1
    assert not await store.exists(forgotten)
    assert await store.exists(touched) and await store.exists(stored_again)
