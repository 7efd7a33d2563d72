"""Blocking Docker Engine calls of the Docker backend (run them in a worker thread)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.types import Mount, Ulimit

from services.core.errors import InfrastructureError, SandboxLost
from services.hands.sandbox import Labelled, SandboxSpec
from services.hands.sandbox.disks import DISK_LABEL, LoopDisks
from services.hands.sandbox.executor_client import MOUNT, command
from services.hands.sandbox.host_paths import HostPaths, discover

# The user an image's agent account and /workspace belong to, as deploy/sandbox/build.sh labels it.
USER_LABEL = "org.loopd.sandbox.user"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """One sandbox as it is made: the worker's spec within the run's profile, and its way out."""

    spec: SandboxSpec
    # Variables its processes get (the proxy's, the CA bundle's, secrets' placeholders).
    environment: Mapping[str, str] = field(default_factory=dict)
    # Whether its executor forwards its loopback's proxy port to the egress socket.
    forward: bool = False


class Engine:
    def __init__(self, spec: SandboxSpec, *, base_url: str, max_connections: int) -> None:
        self._spec = spec
        self._base_url = base_url
        self._max_connections = max_connections
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()
        self._disks = LoopDisks(spec.workspace_disks, spec.user) if spec.workspace_disks else None
        self._swept = False
        self._images_checked: set[str] = set()
        self._host_paths: HostPaths | None = None
        self._shim_missing_logged = False

    def api(self) -> docker.APIClient:
        # Built on first use, in a worker thread: the client asks the engine for its API version.
        with self._client_lock:
            if self._client is None:
                self._client = docker.APIClient(base_url=self._base_url, max_pool_size=self._max_connections)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def host_paths(self) -> HostPaths:
        """Where the engine finds this process's files (found on first use, as the engine's client is)."""
        if self._host_paths is None:
            self._host_paths = discover(self.api())
            if self._host_paths.container_id is not None:
                log.info(
                    "hands runs in container %s: sandboxes bind-mount the host paths behind its mounts",
                    self._host_paths.container_id[:12],
                )
        return self._host_paths

    def create(
        self,
        labels: dict[str, str],
        channel_dir: Path,
        workspace_size: int,
        sandbox: Shape | None = None,
    ) -> str:
        """Create and start a locked-down container whose PID 1 is the executor, dialling `channel_dir`."""
        shape = sandbox or Shape(self._spec)
        if self._disks is None:
            workspace = Mount(self._spec.workdir, None, type="volume", labels=labels)
            return self._create(labels, channel_dir, workspace, shape)
        self._sweep_disks()
        disk, mount_point = self._disks.create(workspace_size)
        try:
            workspace = Mount(self._spec.workdir, str(self.host_paths().of(mount_point)), type="bind")
            return self._create({**labels, DISK_LABEL: disk}, channel_dir, workspace, shape)
        except BaseException:
            self._disks.remove(disk)
            raise

    def _create(self, labels: dict[str, str], channel_dir: Path, workspace: Mount, shape: Shape) -> str:
        api, spec = self.api(), shape.spec
        if spec.image not in self._images_checked:
            self._check_image_user(spec.image)
            self._images_checked.add(spec.image)
        pids_limit, ulimits = _process_limits(spec.runtime, spec.pids_limit)
        host_config = api.create_host_config(
            runtime=spec.runtime,
            network_mode=spec.network_mode,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=spec.read_only_root,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={spec.tmp_size}"},
            mounts=[
                workspace,
                Mount(MOUNT, str(self.host_paths().of(channel_dir)), type="bind", read_only=True),
                *self._runsc_mounts(spec.runtime),
            ],
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=pids_limit,
            ulimits=ulimits,
        )
        container = api.create_container(
            spec.image,
            command=list(command(shape.forward)),
            user=spec.user,
            working_dir=spec.workdir,
            environment={**shape.environment, "HOME": "/tmp", "TMPDIR": "/tmp"},
            labels=labels,
            host_config=host_config,
        )
        try:
            api.start(container["Id"])
        except BaseException:
            self.destroy(container["Id"])
            raise
        return str(container["Id"])

    def _runsc_mounts(self, runtime: str) -> list[Mount]:
        """The statx shim (deploy/gvisor/statx.c) and the /etc/ld.so.preload naming it, for runsc only.

        Without them `ls DIR`, `ls -l` and `stat` fail in a runsc 2022 sandbox. They are found beside
        loopd's source (deploy/setup.sh builds the shim) and only by hands on the engine's host.
        """
        if runtime != "runsc":
            return []
        if not _SHIM.is_file() or self.host_paths().container_id is not None:
            if not self._shim_missing_logged:
                self._shim_missing_logged = True
                log.warning(
                    "runsc sandboxes go without the statx shim (%s; `bash deploy/setup.sh gvisor` builds "
                    "it): ls -l and stat fail in them",
                    _SHIM,
                )
            return []
        return [
            Mount(_SHIM_TARGET, str(_SHIM), type="bind", read_only=True),
            Mount("/etc/ld.so.preload", str(_PRELOAD), type="bind", read_only=True),
        ]

    def _check_image_user(self, image: str) -> None:
        """Refuse an image built for another user: its /workspace would not be writable by ours.

        An image from before the label counts as built for the user it runs as.
        """
        config = self.api().inspect_image(image).get("Config") or {}  # type: ignore[no-untyped-call]
        built_for = (config.get("Labels") or {}).get(USER_LABEL) or config.get("User") or "root"
        if built_for != self._spec.user:
            raise InfrastructureError(
                f"sandbox image {image} was built for user {built_for}, not {self._spec.user}"
                " (LOOPD_SANDBOX_USER): rebuild it with `make image` (deploy/sandbox/build.sh)",
                code="sandbox_image_mismatch",
                retryable=False,
            )

    def destroy(self, sandbox_id: str) -> None:
        disk = self._disk_of(sandbox_id) if self._disks is not None else None
        try:
            self.api().remove_container(sandbox_id, v=True, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                raise
        if disk is not None and self._disks is not None:
            self._disks.remove(disk)

    def _disk_of(self, sandbox_id: str) -> str | None:
        try:
            labels = self.api().inspect_container(sandbox_id)["Config"].get("Labels") or {}
        except NotFound:
            return None
        return labels.get(DISK_LABEL)

    def _sweep_disks(self) -> None:
        """Once per process: remove the disks no container on this engine names (left by a crash)."""
        if self._swept or self._disks is None:
            return
        self._swept = True
        in_use = {
            str((c.get("Labels") or {}).get(DISK_LABEL))
            for c in self.api().containers(all=True, filters={"label": DISK_LABEL})
        }
        self._disks.sweep(in_use)

    def alive(self, sandbox_id: str) -> bool:
        try:
            return bool(self.api().inspect_container(sandbox_id)["State"]["Running"])
        except NotFound:
            return False

    def restart(self, sandbox_id: str) -> None:
        # Stopping a container kills its whole pid namespace; the /workspace volume survives.
        self.api().restart(sandbox_id, timeout=0)

    def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        def upload(api: docker.APIClient) -> None:
            # A file object makes the client stream the archive instead of loading it.
            with source.open("rb") as data:
                api.put_archive(sandbox_id, path, data)

        self._archive_call(sandbox_id, upload)

    def find(self, labels: Mapping[str, str]) -> list[str]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        return [str(c["Id"]) for c in self.api().containers(all=True, filters=filters)]

    def labelled(self, key: str, among: Mapping[str, str]) -> list[Labelled]:
        filters = {"label": [key, *(f"{k}={v}" for k, v in among.items())]}
        return [
            Labelled(str(c["Id"]), str((c.get("Labels") or {}).get(key, "")), float(c.get("Created") or 0))
            for c in self.api().containers(all=True, filters=filters)
        ]

    def _archive_call(self, sandbox_id: str, fn: Callable[[docker.APIClient], object]) -> None:
        try:
            fn(self.api())
        except NotFound as exc:
            if not self.alive(sandbox_id):
                raise SandboxLost(f"sandbox {sandbox_id[:12]} is gone") from exc
            raise


_SOURCE = Path(__file__).resolve().parents[3]
_SHIM = _SOURCE / ".gvisor" / "statx.so"
# Names _SHIM_TARGET; it takes the place of an image's own /etc/ld.so.preload.
_PRELOAD = _SOURCE / "deploy" / "gvisor" / "ld.so.preload"
_SHIM_TARGET = "/usr/lib/loopd/gvisor-statx.so"

# Host tasks a runsc sandbox may use per process it runs, and for gVisor's own (measured: about nine
# per process on the ptrace platform, and some 40 for an idle sandbox).
_RUNSC_TASKS_PER_PROCESS = 16
_RUNSC_OWN_TASKS = 256


def _process_limits(runtime: str, pids: int) -> tuple[int, list[Ulimit] | None]:
    """How a sandbox is held to `pids` processes under its runtime: (the pids cgroup's limit, ulimits).

    runc: the container's pids cgroup counts the tools' processes. runsc: the other options hold as
    they are (its registration in deploy/setup.sh gives what they need: --host-uds=open for the
    executor's socket, --network=none), but not this one. On the ptrace platform each process of the
    sandbox runs on several host tasks, all charged to that cgroup, and gVisor dies at once when it
    cannot make one, so a fork bomb would kill the sandbox instead of failing its forks. There the
    tools' limit is RLIMIT_NPROC, which gVisor's own kernel enforces for the sandbox alone (under runc
    it would count the uid across every container), and the cgroup keeps a backstop for gVisor's
    tasks. Docker's seccomp profile is not applied inside gVisor: its kernel answers the tools'
    system calls itself and filters its own calls to the host.
    """
    if runtime != "runsc":
        return pids, None
    return pids * _RUNSC_TASKS_PER_PROCESS + _RUNSC_OWN_TASKS, [Ulimit(name="nproc", soft=pids, hard=pids)]
