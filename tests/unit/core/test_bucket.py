"""LOOPD_ARTIFACTS_URL names a bucket and a prefix; the filesystem stays the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.core.artifacts import build_artifact_store
from services.core.artifacts.bucket import Location
from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.artifacts.s3 import S3ArtifactStore
from services.core.settings import Settings
from services.hands.workspace.ledger import build_ledger
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from services.hands.workspace.ledger.s3 import S3Ledger


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://loopd", "loopd", ""),
        ("s3://loopd/", "loopd", ""),
        ("s3://loopd-artifacts/prod", "loopd-artifacts", "prod/"),
        ("s3://loopd.example/team/a/", "loopd.example", "team/a/"),
    ],
)
def test_a_url_names_a_bucket_and_a_prefix(url: str, bucket: str, prefix: str) -> None:
    assert Settings(artifacts_url=url).artifacts_url == url
    assert Location.parse(url) == Location(bucket, prefix)


@pytest.mark.parametrize(
    "url", ["http://loopd/x", "s3://", "s3://Loopd_Bucket", "s3://loopd//x", "/srv/loopd"]
)
def test_anything_else_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(artifacts_url=url)


def test_a_key_pair_comes_whole() -> None:
    with pytest.raises(ValidationError, match="together"):
        Settings(artifacts_url="s3://loopd", s3_access_key_id="an-id")


def test_the_settings_pick_the_backends(tmp_path: Path) -> None:
    assert isinstance(build_artifact_store(Settings(artifacts_dir=tmp_path)), FilesystemArtifactStore)
    assert isinstance(build_ledger(Settings(artifacts_dir=tmp_path)), FilesystemLedger)
    # Building a client reaches no server: nothing is asked of the bucket until it is used.
    in_bucket = Settings(
        artifacts_url="s3://loopd/prod", s3_region="eu-west-1", s3_endpoint_url="http://127.0.0.1:9"
    )
    assert isinstance(build_artifact_store(in_bucket), S3ArtifactStore)
    assert isinstance(build_ledger(in_bucket), S3Ledger)


def test_the_secret_key_is_never_shown() -> None:
    settings = Settings(
        artifacts_url="s3://loopd", s3_access_key_id="an-id", s3_secret_access_key="s3cr3t-value"
    )

    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in settings.model_dump_json()
