"""The sandbox driver boundary: create disposable locked-down sandboxes and run processes in them.

A driver is built for one `SandboxSpec` (the worker's policy) and knows nothing about tools or runs
beyond the labels it is given. Backends: docker.py (Docker Engine API, with an executor process inside
each sandbox that runs the commands: inside/executor.py, spoken to by executor_client.py, and a
loop-mounted disk per sandbox that bounds its /workspace: disks.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from services.core.errors import InfrastructureError
from services.hands.contract.manifest import Entry, FileEntry
from services.hands.contract.profile import SandboxProfile

if TYPE_CHECKING:
    from services.core.settings import Settings
    from services.hands.egress.gate import Egress

log = logging.getLogger(__name__)


class SandboxRefused(InfrastructureError):
    """The sandbox could not do what it was asked on its own files (permissions, a vanished path)."""

    code = "sandbox_request_failed"
    retryable = False


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
    # Host directory holding each sandbox's channel directory (None: a default under /run or /tmp).
    runtime_dir: Path | None = None
    # Bytes of /workspace a sandbox gets unless its CreateSandbox asks otherwise.
    workspace_size: int = 1024**3
    # Host directory of the loop-mounted workspace disks that enforce that size (disks.py); None: an
    # engine volume, which the engine cannot bound.
    workspace_disks: Path | None = None
    # The engine's OCI runtime for the sandboxes: "runc" or "runsc" (gVisor); a profile may ask for runsc.
    runtime: str = "runc"

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
            runtime_dir=settings.sandbox_runtime_dir,
            workspace_size=int(settings.sandbox_workspace_size),
            workspace_disks=settings.workspace_images_path if _loop_disks(settings) else None,
            runtime=settings.sandbox_runtime,
        )

    def within(self, profile: SandboxProfile | None) -> SandboxSpec:
        """This spec as a run's profile shapes it: its image, and limits no higher than the worker's."""
        if profile is None:
            return self
        memory = _bytes(self.memory)
        if profile.memory_bytes is not None:
            memory = min(memory, profile.memory_bytes)
        return replace(
            self,
            image=profile.image or self.image,
            cpus=min(self.cpus, profile.cpus) if profile.cpus is not None else self.cpus,
            memory=str(memory),
            pids_limit=min(self.pids_limit, profile.pids) if profile.pids is not None else self.pids_limit,
            # gVisor where either asks for it: a worker set to runsc runs nothing under runc.
            runtime="runsc" if "runsc" in (self.runtime, profile.runtime) else self.runtime,
        )


def _bytes(size: str) -> int:
    from docker.utils import parse_bytes

    return int(parse_bytes(size))


def _loop_disks(settings: Settings) -> bool:
    """Whether workspaces are loop disks: asked for, or `auto` where this process can mount them
    where the engine sees them (as root, in the engine's own mount namespace)."""
    from services.hands.sandbox.disks import engine_sees_our_mounts, loop_disks_work

    if settings.sandbox_workspace_storage != "auto":
        return settings.sandbox_workspace_storage == "loop"
    if loop_disks_work() and engine_sees_our_mounts(settings.sandbox_docker_host):
        return True
    log.warning(
        "sandbox workspaces are engine volumes, which nothing bounds: run hands as root beside the "
        "engine for loop disks (sandbox_workspace_storage=loop); snapshots still keep to the size"
    )
    return False


@dataclass(frozen=True)
class CreateSandbox:
    labels: Mapping[str, str]
    # Bytes of /workspace; None: the spec's workspace_size.
    workspace_size: int | None = None
    # The run's environment: image, limits (within the spec's) and network; None: the spec as it is.
    profile: SandboxProfile | None = None


@dataclass(frozen=True)
class ExecRequest:
    argv: tuple[str, ...]
    timeout: float
    # Bytes of each stream worth sending back; the rest is read and dropped in the sandbox.
    output_cap: int | None = None


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
class Labelled:
    sandbox_id: str
    value: str  # of the label asked for
    created_at: float  # seconds since the epoch


@dataclass(frozen=True)
class WorkspaceScan:
    """A directory's manifest entries, and the files among them whose content the host has not seen.

    A content is seen once the host has read it from this sandbox and checked its sha256 (or wrote it
    there itself) and stored it; the sandbox's own word for a sha256 is never enough, or a sandbox could
    claim a content it never had and have it restored.
    """

    entries: tuple[Entry, ...]
    unseen: tuple[FileEntry, ...]
    hashed: int = 0
    # Entries left out because they could not be read (a path too long, a file that vanished): how
    # many, and the first few as (path, why).
    skipped: int = 0
    skipped_shown: tuple[tuple[str, str], ...] = ()


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

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        """List the directory recursively, hashing only files changed since the last scan.

        Files larger than `limit` bytes are listed with an empty sha256, unread. Raises SandboxLost.
        """
        ...

    def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        """The content of one regular file of the sandbox (`path` absolute), in chunks."""
        ...

    def read_many(
        self, sandbox_id: str, files: Sequence[tuple[str, int]]
    ) -> AsyncGenerator[tuple[int, bytes | None], None]:
        """The contents of small regular files (absolute path, size listed), as (index, content), in
        order: None for one that cannot be read, and a content read up to one byte past its size, so
        one that grew shows it. Raises SandboxLost."""
        ...

    def trust(self, sandbox_id: str, sha256s: Iterable[str]) -> None:
        """Mark contents as seen in the sandbox (verified and stored by the host): later scans skip them."""
        ...

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of every sandbox, running or not, that carries all these labels."""
        ...

    async def labelled(self, key: str, among: Mapping[str, str]) -> list[Labelled]:
        """Every sandbox on this engine, running or not, that carries the label `key` and all of
        `among`, whoever made it."""
        ...

    async def aclose(self) -> None: ...


def build_driver(
    settings: Settings, labels: Mapping[str, str], egress: Egress | None = None
) -> SandboxDriver:
    """The Docker backend, imported lazily so that importing the hands API never needs the Docker SDK.

    `egress` gives sandboxes whose profile allows a network their way out; without it they get none.
    """
    from services.hands.sandbox.docker import DockerDriver

    spec = SandboxSpec.from_settings(settings, labels)
    return DockerDriver(
        spec, base_url=settings.sandbox_docker_host, max_connections=4 * settings.hands_slots, egress=egress
    )
