"""A sandbox's process limit under each runtime: the pids cgroup under runc; under runsc, gVisor's own
RLIMIT_NPROC, with a host backstop wide enough for the host tasks gVisor runs each process on."""

from __future__ import annotations

from services.hands.sandbox.docker_engine import _process_limits


def test_runc_counts_the_tools_processes_in_the_pids_cgroup() -> None:
    assert _process_limits("runc", 256) == (256, None)


def test_runsc_limits_the_tools_inside_gvisor_and_leaves_the_host_cgroup_room() -> None:
    host_pids, ulimits = _process_limits("runsc", 256)

    assert ulimits is not None
    assert [(u.name, u.soft, u.hard) for u in ulimits] == [("nproc", 256, 256)]
    # About nine host tasks per process were measured on the ptrace platform.
    assert host_pids >= 10 * 256


def test_the_preload_file_names_where_the_shim_is_mounted() -> None:
    from services.hands.sandbox.docker_engine import _PRELOAD, _SHIM_TARGET

    assert _PRELOAD.read_text().split() == [_SHIM_TARGET]
