"""The sandbox driver boundary: create disposable locked-down sandboxes and run processes in them.

A driver is built for one `SandboxSpec` (the worker's policy) and knows nothing about tools or runs
beyond the labels it is given. Backends: docker.py (Docker Engine API).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from services.core.settings import Settings


@dataclass(frozen=True)
class SandboxSpec:
    """How every sandbox of a worker is locked down."""

    image: str
    user: str
    memory: str
    cpus: float
    pids_limit: int
    tmp_size: str = "256m"
    network_mode: str = "none"
    read_only_root: bool = True
    workdir: str = "/workspace"
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, labels: Mapping[str, str]) -> SandboxSpec:
        return cls(
            image=settings.sandbox_image,
            user=settings.sandbox_user,
            memory=settings.sandbox_memory,
            cpus=settings.sandbox_cpus,
            pids_limit=settings.sandbox_pids,
            tmp_size=settings.sandbox_tmp_size,
            labels=dict(labels),
        )


@dataclass(frozen=True)
class CreateSandbox:
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ExecRequest:
    argv: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class ExecOutput:
    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecExit:
    """The end of an exec: always the last item of `SandboxDriver.exec`."""

    exit_code: int | None
    timed_out: bool = False
    lost: bool = False


@dataclass(frozen=True)
class PutFile:
    path: str
    data: bytes
    mode: int = 0o644


class SandboxDriver(Protocol):
    async def create(self, request: CreateSandbox) -> str:
        """Create and start a sandbox; return its id."""
        ...

    async def destroy(self, sandbox_id: str) -> None:
        """Remove the sandbox and its storage; a sandbox that is already gone is not an error."""
        ...

    async def alive(self, sandbox_id: str) -> bool: ...

    def exec(self, sandbox_id: str, request: ExecRequest) -> AsyncGenerator[ExecOutput | ExecExit, None]:
        """Run argv as the sandbox user in the workdir, streaming output; ends with one ExecExit.

        The exec ends when every process holding its output has exited. At the timeout every process
        of the sandbox user is killed and the sandbox stays usable. Closing the iterator early kills too.
        """
        ...

    async def put_file(self, sandbox_id: str, request: PutFile) -> None:
        """Write a file (owned by the sandbox user) into an existing directory of the sandbox."""
        ...

    async def export(self, sandbox_id: str, path: str, dest: Path) -> None:
        """Write a tar archive of the sandbox directory `path` to the host file `dest`."""
        ...

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        """Unpack the host tar file `source` into the existing sandbox directory `path`.

        Members keep the owner, mode and link target the archive gives them.
        """
        ...

    async def clear(self, sandbox_id: str, path: str) -> None:
        """Kill every process of the sandbox user, then delete everything inside the directory `path`.

        Killing first means nothing left running from earlier calls writes into what comes next.
        """
        ...

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of every sandbox, running or not, that carries all these labels."""
        ...

    async def aclose(self) -> None: ...


def build_driver(settings: Settings, labels: Mapping[str, str]) -> SandboxDriver:
    """The Docker backend, imported lazily so that importing the hands API never needs the Docker SDK."""
    from services.hands.sandbox.docker import DockerDriver

    spec = SandboxSpec.from_settings(settings, labels)
    return DockerDriver(spec, base_url=settings.sandbox_docker_host, max_connections=4 * settings.hands_slots)
