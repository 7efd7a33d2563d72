"""Hands workers that share no disk, only an object store (a real S3 server on loopback): one is
killed mid-call, and the retry restores the run's snapshot from the bucket on the other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.servers import S3Server
from tests.faults.conftest import FaultCluster, fault_cluster
from tests.faults.test_kills import kill_the_hands_mid_call

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, s3: S3Server, bucket: str) -> Iterator[FaultCluster]:
    root = tmp_path_factory.mktemp("faults-s3")
    with fault_cluster(root, **s3.env(bucket)) as cluster:
        yield cluster


def test_a_hands_worker_killed_mid_call_is_retried_from_the_snapshot_in_the_bucket(
    faults: FaultCluster, s3: S3Server, bucket: str
) -> None:
    kill_the_hands_mid_call(faults)

    stored = [
        item["Key"]
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", ())
    ]
    assert any(key.startswith("loopd/blobs/") for key in stored)
    assert any(key.startswith("loopd/ledger/") for key in stored)
    root = faults.cluster.artifacts_dir.parent
    for process in faults.cluster.processes.processes.values():
        artifacts = root / process.name / "artifacts"
        assert not artifacts.exists() or not any(artifacts.iterdir()), f"{process.name} wrote to its disk"
