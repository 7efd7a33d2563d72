"""A hands worker removes the sandboxes of hands workers that died without cleaning up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from services.core.bus import Bus, HandsInfo
from services.hands.server import HANDS_LABEL, REGISTRY_LABEL, STACK_LABEL, registry_id

from .conftest import remove_labelled

pytestmark = pytest.mark.docker


@pytest.fixture
def leftovers(docker_api: docker.APIClient, sandbox_image: str) -> Iterator[Callable[..., str]]:
    """Start a container the way a hands worker labels its sandboxes, as if one had left it behind."""
    owners: list[str] = []

    def leave(owner: str, registry: str, stack: str) -> str:
        owners.append(owner)
        container = docker_api.create_container(
            sandbox_image,
            command=["sleep", "600"],
            labels={HANDS_LABEL: owner, REGISTRY_LABEL: registry, STACK_LABEL: stack},
            host_config=docker_api.create_host_config(network_mode="none"),
        )
        docker_api.start(container["Id"])
        return str(container["Id"])

    yield leave
    for owner in owners:
        remove_labelled(docker_api, owner)


def exists(api: docker.APIClient, container_id: str) -> bool:
    return bool(api.containers(all=True, filters={"id": container_id}))


async def test_sandboxes_of_a_worker_gone_from_the_registry_are_removed_and_no_others(
    bus: Bus, docker_api: docker.APIClient, start_worker: Callable[..., Any], leftovers: Callable[..., str]
) -> None:
    ours, stack = registry_id("local://"), f"test-{uuid.uuid4().hex[:8]}"
    alive = f"test-hands-alive-{uuid.uuid4().hex[:8]}"
    await bus.register_hands(HandsInfo(alive, "127.0.0.1:1", 1, 1), ttl=600)
    of_the_dead = leftovers(f"test-hands-dead-{uuid.uuid4().hex[:8]}", ours, stack)
    of_the_living = leftovers(alive, ours, stack)
    of_another_deployment = leftovers(f"test-hands-other-{uuid.uuid4().hex[:8]}", "another", stack)
    # Same registry address (both local://), but another stack: not this janitor's to judge.
    of_another_stack = leftovers(f"test-hands-next-door-{uuid.uuid4().hex[:8]}", ours, "next-door")

    worker = await start_worker(
        bus_url="local://", hands_orphan_grace_seconds=1.0, hands_warm_pool=1, stack_id=stack
    )
    deadline = time.monotonic() + 30
    while exists(docker_api, of_the_dead):
        assert time.monotonic() < deadline, "the dead worker's sandbox was not removed"
        await asyncio.sleep(0.2)

    assert exists(docker_api, of_the_living)
    assert exists(docker_api, of_another_deployment)
    assert exists(docker_api, of_another_stack)
    own = docker_api.containers(filters={"label": f"{HANDS_LABEL}={worker.hands_id}"})
    assert len(own) == 1  # its warm sandbox is its own, whatever its age
