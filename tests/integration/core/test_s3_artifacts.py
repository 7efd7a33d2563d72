"""What only the object-store backend does: multipart uploads, the sweep's copy aside, the leftovers of
interrupted work, and credentials that never reach an error or a log."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from harness.servers import S3Server
from services.core.artifacts.bucket import Bucket
from services.core.artifacts.s3 import S3ArtifactStore
from services.core.errors import InfrastructureError
from services.core.settings import Settings
from tests.integration.core.test_artifact_store_contract import LATER, clock_past, settings_of

MiB = 1024 * 1024


@pytest.fixture
def settings(s3_env: dict[str, str]) -> Settings:
    return settings_of(s3_env)


@pytest.fixture
def store(settings: Settings) -> S3ArtifactStore:
    return S3ArtifactStore(Bucket(settings))


def keys(bucket: Bucket, under: str) -> list[str]:
    return [item.key for item in bucket.objects(under)]


async def test_a_large_file_goes_up_in_parts(
    store: S3ArtifactStore, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(40 * MiB))

    ref = await store.put_file(source)

    head = Bucket(settings).client.head_object(
        Bucket=Bucket(settings).location.bucket, Key=store.key_of(ref.sha256)
    )
    # A multipart object's ETag counts its parts.
    assert head["ETag"].strip('"').endswith("-3")
    assert ref.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


async def test_keys_live_under_the_prefix(store: S3ArtifactStore, settings: Settings) -> None:
    ref = await store.put(b"a blob")

    assert store.key_of(ref.sha256) == f"loopd/blobs/{ref.sha256[:2]}/{ref.sha256}"
    assert keys(Bucket(settings), "touched/") == [f"loopd/touched/{ref.sha256[:2]}/{ref.sha256}"]


async def test_a_blob_touched_while_it_is_swept_is_put_back(
    store: S3ArtifactStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = (await store.put(b"named by a snapshot just now")).sha256
    real_copy = S3ArtifactStore._copy

    def touch_then_copy(self: S3ArtifactStore, source: str, target: str) -> None:
        # The sweep listed the blob as old; a snapshot touches it before the sweep moves it aside.
        if source == self.key_of(sha256):
            assert self._touch(sha256)
        real_copy(self, source, target)

    monkeypatch.setattr(S3ArtifactStore, "_copy", touch_then_copy)
    await clock_past(time.time() + LATER)
    swept = await store.sweep(set(), older_than=time.time() - LATER / 4)

    assert swept.blobs == 0
    assert await store.get(sha256) == b"named by a snapshot just now"
    assert keys(Bucket(settings), "aside/") == []


async def test_leftovers_of_interrupted_work_go_once_old(store: S3ArtifactStore, settings: Settings) -> None:
    bucket = Bucket(settings)
    name = bucket.location.bucket
    kept = (await store.put(b"copied aside by a sweep that died")).sha256
    bucket.client.copy_object(
        Bucket=name,
        Key=bucket.key(f"aside/{kept}.0123456789abcdef"),
        CopySource={"Bucket": name, "Key": store.key_of(kept)},
    )
    bucket.client.delete_object(Bucket=name, Key=store.key_of(kept))
    unfinished = hashlib.sha256(b"a large file whose upload died").hexdigest()
    bucket.client.create_multipart_upload(Bucket=name, Key=store.key_of(unfinished))
    stray = hashlib.sha256(b"touched, never written").hexdigest()
    assert await store.touch([stray]) == {stray}
    bucket.client.put_object(Bucket=name, Key=bucket.key("ledger/run-1/call-1.json"), Body=b"{}")

    swept = await store.sweep({kept}, older_than=time.time() + 60)

    assert swept.leftovers == 3
    assert await store.get(kept) == b"copied aside by a sweep that died"
    assert keys(bucket, "aside/") == []
    assert bucket.client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert (
        keys(bucket, "touched/") == [bucket.key(f"touched/{kept[:2]}/{kept}")]
        or keys(bucket, "touched/") == []
    )
    assert keys(bucket, "ledger/") == [bucket.key("ledger/run-1/call-1.json")]


async def test_credentials_reach_no_error_and_no_log(s3: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    env: dict[str, Any] = {
        **s3.env("no-such-bucket-here"),
        "LOOPD_S3_SECRET_ACCESS_KEY": "a-secret-never-shown",
    }
    settings = settings_of(env)
    store = S3ArtifactStore(Bucket(settings))

    with caplog.at_level(logging.DEBUG), pytest.raises(InfrastructureError) as error:
        await store.put(b"anything")

    assert error.value.retryable
    assert "a-secret-never-shown" not in str(error.value)
    assert "a-secret-never-shown" not in caplog.text
    assert "a-secret-never-shown" not in repr(settings)
