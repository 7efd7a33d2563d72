"""Fixtures for the hands tests against the real Docker engine.

Every worker gets a random hands_id, which labels its containers; teardown removes exactly the
containers carrying that label, so parallel runs and other users of the engine are left alone.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from services.core.artifacts import ArtifactStore
from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.bus import Bus, build_bus
from services.core.settings import Settings
from services.hands.contract.client import HandsClient
from services.hands.sandbox.disks import LoopDisks
from services.hands.server import HANDS_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=Settings().sandbox_docker_host)
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_api: docker.APIClient) -> str:
    """The sandbox image, built offline by deploy/sandbox/build.sh when it is missing."""
    image = Settings().sandbox_image
    subprocess.run([str(REPO_ROOT / "deploy" / "sandbox" / "build.sh")], check=True)
    assert docker_api.images(name=image), f"{image} is still missing after deploy/sandbox/build.sh"
    return image


def remove_labelled(api: docker.APIClient, hands_id: str) -> None:
    """Remove the containers of one test worker (only those: they carry its random hands_id)."""
    for container in api.containers(all=True, filters={"label": f"{HANDS_LABEL}={hands_id}"}):
        try:
            api.remove_container(container["Id"], v=True, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # already being removed
                raise


@pytest.fixture
def sandbox_runtime(request: pytest.FixtureRequest) -> str:
    """The sandboxes' runtime: each of both where a module runs under both (runtimes.py beside this),
    elsewhere LOOPD_SANDBOX_RUNTIME's, runc by default."""
    return str(getattr(request, "param", os.environ.get("LOOPD_SANDBOX_RUNTIME", "runc")))


@pytest.fixture
def make_settings(tmp_path: Path, sandbox_image: str, sandbox_runtime: str) -> Callable[..., Settings]:
    """Settings for a test worker: a fresh hands_id, loopback, fast heartbeats, small limits."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "sandbox_runtime": sandbox_runtime,
            "hands_id": f"test-hands-{uuid.uuid4().hex[:10]}",
            "hands_listen": "127.0.0.1:0",
            "hands_advertise_host": "127.0.0.1",
            "hands_slots": 4,
            "hands_heartbeat_seconds": 0.2,
            "hands_ttl_seconds": 2.0,
            "sandbox_image": sandbox_image,
            "sandbox_memory": "256m",
            "sandbox_pids": 128,
            "tool_timeout_seconds": 20.0,
            "artifacts_dir": tmp_path / "artifacts",
            "data_dir": tmp_path / "data",
            "hands_secret": HANDS_SECRET,
        }
        return Settings(**{**values, **overrides})

    return make


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    local = build_bus("local://")
    yield local
    await local.aclose()


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return FilesystemArtifactStore(tmp_path / "artifacts")


@pytest.fixture
async def start_worker(
    bus: Bus, artifacts: ArtifactStore, docker_api: docker.APIClient, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Any]]:
    """Start a HandsWorker with settings overrides; every worker started is stopped and cleaned up."""
    started: list[tuple[HandsWorker, Settings]] = []

    async def start(**overrides: Any) -> HandsWorker:
        settings = make_settings(**overrides)
        worker = HandsWorker(settings, bus, artifacts)
        started.append((worker, settings))
        return await worker.__aenter__()

    yield start
    for worker, settings in reversed(started):
        try:
            await worker.__aexit__(None, None, None)
        finally:
            remove_labelled(docker_api, worker.hands_id)
            remove_disks(settings)


def remove_disks(settings: Settings) -> None:
    """Unmount the workspace disks of a test's workers (their containers are gone by now)."""
    LoopDisks(settings.workspace_images_path, settings.sandbox_user).sweep(set(), grace_seconds=0)


@pytest.fixture
async def worker(start_worker: Callable[..., Any]) -> HandsWorker:
    return await start_worker()  # type: ignore[no-any-return]


@pytest.fixture
async def hands(worker: HandsWorker) -> AsyncIterator[HandsClient]:
    async with HandsClient(worker.address, secret=HANDS_SECRET) as client:
        yield client
