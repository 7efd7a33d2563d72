"""Workspace disks of the Docker backend: an ext4 image per sandbox, loop-mounted on the host.

The kernel enforces the image's size, so writing past it fails inside the sandbox with ENOSPC and
touches nothing else. Images are sparse and mounted with `discard`, so the host pays only for the
blocks the sandbox holds. Each disk is a folder under ROOT (the image and its mount point); the
container bind-mounts it and names it in DISK_LABEL, so whoever removes the container removes the
disk, and a sweep removes the disks no container names (left by a crash). Needs root on the host the
engine runs on, and e2fsprogs. Blocking: run it in a worker thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

DISK_LABEL = "loopd.workspace_disk"
_IMAGE = "disk.ext4"
_MOUNT = "mnt"
# struct ucred: pid, uid, gid.
_UCRED = struct.Struct("3i")
# A disk folder younger than this may be one another worker is still setting up.
_SWEEP_GRACE = 600.0
log = logging.getLogger(__name__)


class DiskError(Exception):
    """A disk could not be made or mounted; the message has the tool's own words."""


def loop_disks_work() -> bool:
    """Whether this process can make loop disks (root, mount and mkfs.ext4 present)."""
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("mkfs.ext4", "mount", "umount"))


def engine_sees_our_mounts(docker_host: str) -> bool:
    """Whether the engine behind this unix socket runs in this process's mount namespace, where the
    disks are mounted (not so for hands in a container that was given the host's socket)."""
    if not docker_host.startswith("unix://"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as engine:
            engine.settimeout(5)
            engine.connect(docker_host.removeprefix("unix://"))
            credentials = engine.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid = _UCRED.unpack(credentials)[0]  # 0 when the engine is in a pid namespace we cannot see
        theirs, ours = os.stat(f"/proc/{pid}/ns/mnt"), os.stat("/proc/self/ns/mnt")
        return pid > 0 and (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
    except OSError:
        return False


class LoopDisks:
    def __init__(self, root: Path, owner: str) -> None:
        """`owner` ("uid:gid") owns each disk's top directory: the sandbox user."""
        self.root = root
        self._owner = owner if ":" in owner else f"{owner}:{owner}"

    def create(self, size: int) -> tuple[str, Path]:
        """A fresh, mounted disk of `size` bytes: its name and the host directory to bind-mount."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"disk-{secrets.token_hex(8)}"
        folder = self.root / name
        folder.mkdir(mode=0o700)
        try:
            image, mount_point = folder / _IMAGE, folder / _MOUNT
            with image.open("wb") as out:
                out.truncate(size)
            mount_point.mkdir()
            # No journal (a crash loses the sandbox anyway; snapshots are what lasts), no blocks
            # reserved for root, an inode per 8 KiB so that many small files fit, and no zeroing:
            # the image is sparse, so the inode tables read as zeros already.
            _run(
                "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-i", "8192", "-I", "256",
                "-E", f"root_owner={self._owner},lazy_itable_init=1,nodiscard", str(image),
            )  # fmt: skip
            _run(
                "mount", "-t", "ext4", "-o", "loop,nosuid,nodev,discard,noinit_itable",
                str(image), str(mount_point),
            )  # fmt: skip
            (mount_point / "lost+found").rmdir()
        except BaseException:
            self.remove(name)
            raise
        return name, mount_point

    def remove(self, name: str) -> None:
        """Unmount and delete a disk; one that is gone, or half made, is not an error."""
        if not name.startswith("disk-") or "/" in name:
            return  # not a name this class makes: never act on a path a label suggests
        folder = self.root / name
        mount_point = folder / _MOUNT
        if os.path.ismount(mount_point):
            # Lazy: a container being torn down may still hold it; the loop device goes with the last user.
            _run("umount", "--lazy", str(mount_point))
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self, in_use: set[str], grace_seconds: float = _SWEEP_GRACE) -> int:
        """Remove the disks older than `grace_seconds` that no container names; returns how many."""
        removed = 0
        cutoff = time.time() - grace_seconds
        for folder in self.root.glob("disk-*") if self.root.is_dir() else ():
            try:
                young = folder.stat().st_mtime >= cutoff
            except FileNotFoundError:
                continue  # removed since the listing, by the container's own release
            if folder.name in in_use or young:
                continue
            try:
                self.remove(folder.name)
                removed += 1
            except DiskError:
                log.warning("could not remove the leftover workspace disk %s", folder, exc_info=True)
        if removed:
            log.info("removed %d leftover workspace disks", removed)
        return removed


def _run(*argv: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise DiskError(f"{argv[0]} failed: {(exc.stderr or exc.stdout).strip()}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"{argv[0]} failed: {exc}") from exc
