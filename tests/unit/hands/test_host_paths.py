"""Hands in a container name the host paths behind their container's mounts to the engine; outside a
container their own paths are the host's already."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from services.core.errors import InfrastructureError
from services.hands.sandbox.host_paths import HostPaths, discover, own_container_id

CONTAINER = "8118abd27339" + "0" * 52
MOUNTINFO = f"""\
352 92 0:100 / / rw,relatime master:7 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A
353 352 0:105 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
358 357 0:29 /docker/{CONTAINER} /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
371 352 254:0 /var/lib/docker/volumes/stack_hands-runtime/_data /run/loopd-hands rw - ext4 /dev/vda rw
373 352 254:0 /var/lib/docker/containers/{CONTAINER}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
374 352 254:0 /var/lib/docker/containers/{CONTAINER}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""
IN_CONTAINER = HostPaths(
    mounts=(
        (PurePosixPath("/run/loopd-hands/deep"), PurePosixPath("/srv/deep")),
        (
            PurePosixPath("/run/loopd-hands"),
            PurePosixPath("/var/lib/docker/volumes/stack_hands-runtime/_data"),
        ),
        (
            PurePosixPath("/var/lib/loopd/artifacts"),
            PurePosixPath("/var/lib/docker/volumes/stack_artifacts/_data"),
        ),
    ),
    container_id=CONTAINER,
)


def test_the_container_is_named_by_the_files_the_engine_mounts_into_it() -> None:
    assert own_container_id(MOUNTINFO) == CONTAINER


def test_a_process_on_the_host_has_no_container() -> None:
    host = "\n".join(line for line in MOUNTINFO.splitlines() if "/containers/" not in line)

    assert own_container_id(host) is None
    assert HostPaths().of(Path("/run/loopd-hands/abc")) == Path("/run/loopd-hands/abc")


def test_a_path_under_a_mount_is_the_host_path_behind_that_mount() -> None:
    channel = Path("/run/loopd-hands/0d262977a3a8/ab82e5633e40")

    assert IN_CONTAINER.of(channel) == Path(
        "/var/lib/docker/volumes/stack_hands-runtime/_data/0d262977a3a8/ab82e5633e40"
    )
    assert IN_CONTAINER.of(Path("/run/loopd-hands")) == Path(
        "/var/lib/docker/volumes/stack_hands-runtime/_data"
    )


def test_the_deepest_mount_wins() -> None:
    assert IN_CONTAINER.of(Path("/run/loopd-hands/deep/x")) == Path("/srv/deep/x")


@pytest.mark.parametrize("path", ["/run/loopd-hands2/x", "/tmp/loopd-hands-0/abc", "/run"])
def test_a_path_no_mount_backs_is_refused_with_its_code(path: str) -> None:
    with pytest.raises(InfrastructureError) as refused:
        IN_CONTAINER.of(Path(path))

    assert refused.value.code == "sandbox_path_unshared" and not refused.value.retryable
    assert CONTAINER[:12] in refused.value.message


def test_a_container_file_mounted_elsewhere_names_no_container() -> None:
    elsewhere = (
        f"88 27 254:0 /var/lib/docker/containers/{CONTAINER}/hostname /srv/copy rw - ext4 /dev/vda rw\n"
    )

    assert own_container_id(elsewhere) is None


class _Engine:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def inspect_container(self, container_id: str) -> dict[str, object]:
        assert container_id == CONTAINER
        return {
            "State": {"Pid": self.pid},
            "Mounts": [{"Destination": "/run/loopd-hands", "Source": "/var/lib/docker/volumes/x/_data"}],
        }


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A /proc of this process's mountinfo and mount namespace, and of pid 4242 in another namespace."""
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "self" / "ns" / "mnt").write_text("")
    (tmp_path / "4242" / "ns").mkdir(parents=True)
    (tmp_path / "4242" / "ns" / "mnt").write_text("")
    return tmp_path


def test_inside_the_container_its_mounts_are_mapped(proc: Path) -> None:
    # The container's host pid is one this process cannot see: it is in the container's pid namespace.
    found = discover(_Engine(pid=7), proc)

    assert found.container_id == CONTAINER
    assert found.of(Path("/run/loopd-hands/a")) == Path("/var/lib/docker/volumes/x/_data/a")


def test_a_container_whose_process_is_in_another_mount_namespace_is_not_ours(proc: Path) -> None:
    assert discover(_Engine(pid=4242), proc) == HostPaths()
    assert HostPaths().of(Path("/tmp/x")) == Path("/tmp/x")


def test_the_container_whose_process_shares_our_mount_namespace_is_ours(proc: Path) -> None:
    (proc / "4242" / "ns" / "mnt").unlink()
    (proc / "4242" / "ns" / "mnt").hardlink_to(proc / "self" / "ns" / "mnt")

    assert discover(_Engine(pid=4242), proc).container_id == CONTAINER
