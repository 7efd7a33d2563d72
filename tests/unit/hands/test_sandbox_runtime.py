"""Which runtime a sandbox gets: the worker's (sandbox_runtime), or gVisor when a run's profile asks
for it; a worker set to runsc never makes a runc sandbox."""

from __future__ import annotations

import pytest

from services.core.settings import Settings
from services.hands.contract.profile import SandboxProfile
from services.hands.sandbox import SandboxSpec


def spec(runtime: str) -> SandboxSpec:
    return SandboxSpec(
        image="loopd-sandbox:latest",
        user="64000:64000",
        memory="512m",
        cpus=1.0,
        pids_limit=256,
        runtime=runtime,
    )


@pytest.mark.parametrize(
    ("worker", "asked", "made"),
    [("runc", "runc", "runc"), ("runc", "", "runc"), ("runc", "runsc", "runsc"), ("runsc", "runc", "runsc")],
)
def test_gvisor_where_the_worker_or_the_profile_asks_for_it(worker: str, asked: str, made: str) -> None:
    assert spec(worker).within(SandboxProfile("env", 1, runtime=asked)).runtime == made


def test_the_setting_is_the_workers_runtime() -> None:
    settings = Settings(sandbox_runtime="runsc", sandbox_workspace_storage="volume")

    assert SandboxSpec.from_settings(settings, {}).runtime == "runsc"
    assert Settings().sandbox_runtime == "runc"


def test_another_runtime_is_refused_at_the_edge() -> None:
    with pytest.raises(ValueError, match="sandbox_runtime"):
        Settings(sandbox_runtime="kata")
