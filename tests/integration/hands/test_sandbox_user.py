"""Hands run sandboxes only as the user their image was built for: another one could not write
/workspace, so its first sandbox fails with a clear, non-retryable error."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest

from services.core.errors import InfrastructureError
from services.core.settings import Settings
from services.hands.sandbox import CreateSandbox, SandboxSpec
from services.hands.sandbox.docker import DockerDriver
from services.hands.server import HANDS_LABEL
from tests.integration.hands.conftest import remove_labelled

pytestmark = pytest.mark.docker


async def test_an_image_built_for_another_user_is_refused(
    sandbox_image: str, docker_api: docker.APIClient, tmp_path: Path
) -> None:
    hands_id = f"test-user-{uuid.uuid4().hex[:10]}"
    built_for = Settings().sandbox_user
    uid, gid = (int(part) + 1 for part in built_for.split(":"))
    # Its workspace disk, if one gets made, lives under the test's folder, not the checkout's.
    settings = Settings(sandbox_image=sandbox_image, sandbox_user=f"{uid}:{gid}", data_dir=tmp_path)
    driver = DockerDriver(
        SandboxSpec.from_settings(settings, {HANDS_LABEL: hands_id}), base_url=settings.sandbox_docker_host
    )
    try:
        with pytest.raises(InfrastructureError) as refused:
            await driver.create(CreateSandbox(labels={}))
    finally:
        await driver.aclose()
        remove_labelled(docker_api, hands_id)

    assert refused.value.code == "sandbox_image_mismatch" and not refused.value.retryable
    assert f"built for user {built_for}, not {uid}:{gid}" in refused.value.message
    assert "make image" in refused.value.message
    assert docker_api.containers(all=True, filters={"label": f"{HANDS_LABEL}={hands_id}"}) == []
