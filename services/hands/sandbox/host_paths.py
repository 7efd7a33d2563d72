"""Where the Docker engine finds a hands worker's files: the host paths behind its container's mounts.

The engine resolves a sandbox's bind mounts (the executor's channel directory, a workspace disk) on
its own host. Hands running there as a plain process name host paths already. Hands in a container
that drives the host's engine through its socket make those files in the container's file system,
which the engine sees only where one of the container's mounts (a volume or a host folder) backs
it; the engine's inspection of the container says which host path backs which mount. Blocking: run
it in a worker thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from docker.errors import NotFound

from services.core.errors import InfrastructureError

# The engine bind-mounts files of its own (hostname, hosts, resolv.conf) from its folder of the
# container onto the same names under /etc of every container: their source names the container's
# id. Only a mount at /etc counts: a host can show such a file mounted elsewhere.
_CONTAINER_FILE = re.compile(
    r"/containers/([0-9a-f]{64})/(hostname|hosts|resolv\.conf) /etc/\2\s", re.MULTILINE
)


def own_container_id(mountinfo: str) -> str | None:
    """The id of the container this process runs in, from /proc/self/mountinfo; None outside one."""
    found = _CONTAINER_FILE.search(mountinfo)
    return found.group(1) if found else None


@dataclass(frozen=True)
class HostPaths:
    """Maps this process's paths to the engine's; identity outside a container."""

    # The container's mounts as (where it sees one, the engine's path of its source), deepest first.
    mounts: tuple[tuple[PurePosixPath, PurePosixPath], ...] = ()
    container_id: str | None = None

    def of(self, path: Path) -> Path:
        """The engine's path of `path`; raises if the engine cannot see it (inside the container only)."""
        if self.container_id is None:
            return path
        inside = PurePosixPath(path)
        for destination, source in self.mounts:
            if inside == destination or destination in inside.parents:
                return Path(source / inside.relative_to(destination))
        raise InfrastructureError(
            f"{path} is inside hands' container {self.container_id[:12]}, where the Docker engine cannot"
            " find it for a sandbox: mount a volume or a host folder there (see deploy/README.md)",
            code="sandbox_path_unshared",
            retryable=False,
        )


def discover(api: Any, proc: Path = Path("/proc")) -> HostPaths:
    """This process's HostPaths, asking the engine behind `api` about its container.

    A container the engine does not know is one of another engine (hands reaching a remote one):
    there the paths of this process are not the engine's to translate, so they are left as they are.
    """
    try:
        container_id = own_container_id((proc / "self" / "mountinfo").read_text())
    except OSError:
        container_id = None
    if container_id is None:
        return HostPaths()
    try:
        container = api.inspect_container(container_id)
    except NotFound:
        return HostPaths()
    if not _runs_in_our_mount_namespace(container, proc):
        return HostPaths()
    mounts = container.get("Mounts") or []
    pairs = [
        (PurePosixPath(mount["Destination"]), PurePosixPath(mount["Source"]))
        for mount in mounts
        if mount.get("Source") and mount.get("Destination")
    ]
    pairs.sort(key=lambda pair: len(pair[0].parts), reverse=True)
    return HostPaths(tuple(pairs), container_id)


def _runs_in_our_mount_namespace(container: dict[str, Any], proc: Path) -> bool:
    """False when the container's first process is one this process sees in another mount namespace.

    Inside the container its host pid is not ours to see (another pid namespace), so that is taken as
    ours; a process that can see it and finds a namespace unlike its own is no process of that
    container, and its paths are the engine's own.
    """
    pid = (container.get("State") or {}).get("Pid") or 0
    try:
        theirs, ours = (proc / str(pid) / "ns" / "mnt").stat(), (proc / "self" / "ns" / "mnt").stat()
    except OSError:
        return True
    return pid <= 0 or (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
