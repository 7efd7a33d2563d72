"""A sandbox is locked down by default: no network, no privileges, read-only root, writable work dirs."""

from __future__ import annotations

import os
import pwd

import pytest

from services.core.settings import Settings
from services.hands.contract.client import HandsClient
from tests.integration.hands.calls import bash, new_run
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]

# Checks the interfaces before anything else, so no connect is ever tried from a sandbox with a network.
NETWORK_PROBE = r"""
import errno, os, socket, sys
print("interfaces", sorted(os.listdir("/sys/class/net")))
if os.listdir("/sys/class/net") != ["lo"]:
    sys.exit(1)
routes = [line for line in open("/proc/net/route").read().splitlines()[1:] if line.strip()]
print("routes", len(routes))
for address in [("127.0.0.1", 1), ("192.0.2.1", 80)]:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(address)
        print(address[0], "connected")
    except OSError as e:
        print(address[0], errno.errorcode.get(e.errno, e.errno))
"""


async def test_sandbox_has_only_loopback_and_no_route_out(hands: HandsClient) -> None:
    result = await bash(hands, new_run(), f"python3 -c '{NETWORK_PROBE}'")

    assert result.ok, result.output
    assert "interfaces ['lo']" in result.output
    assert "routes 0" in result.output
    assert "127.0.0.1 ECONNREFUSED" in result.output
    # No route: Linux says the network, gVisor's network stack the host, is unreachable.
    assert "192.0.2.1 ENETUNREACH" in result.output or "192.0.2.1 EHOSTUNREACH" in result.output


async def test_sandbox_runs_unprivileged(hands: HandsClient) -> None:
    result = await bash(hands, new_run(), "id -u; id -g; grep -E '^Cap(Eff|Prm)' /proc/self/status")

    assert result.ok, result.output
    lines = result.output.splitlines()
    assert ":".join(lines[:2]) == Settings().sandbox_user
    # A uid that a host account has would share that account's files on any host path it reached.
    with pytest.raises(KeyError):
        pwd.getpwuid(int(lines[0]))
    assert "CapEff:\t0000000000000000" in lines
    assert "CapPrm:\t0000000000000000" in lines


async def test_root_is_read_only_but_workspace_and_tmp_are_writable(hands: HandsClient) -> None:
    run_id = new_run()

    # /var/tmp is world-writable: only the read-only root can refuse the file.
    root = await bash(hands, run_id, "touch /var/tmp/x")
    work = await bash(hands, run_id, "pwd; touch /workspace/a /tmp/b; echo $HOME; ls /workspace; ls /tmp")

    assert not root.ok and root.error == "nonzero_exit"
    assert "Read-only file system" in root.output
    assert work.ok, work.output
    assert work.output.splitlines() == ["/workspace", "/tmp", "a", "b"]


async def test_sandbox_is_a_container(hands: HandsClient) -> None:
    result = await bash(hands, new_run(), "test -e /.dockerenv && echo container")

    assert result.ok and result.output == "container\n"


async def test_tools_see_the_kernel_of_their_runtime(hands: HandsClient, sandbox_runtime: str) -> None:
    result = await bash(hands, new_run(), "uname -r; dmesg 2>&1 | head -n 1")

    assert result.ok, result.output
    release, first_message = result.output.splitlines()[:2]
    if sandbox_runtime == "runsc":
        # gVisor's kernel answers the system calls: its own release, and its own boot log.
        assert release != os.uname().release
        assert "Starting gVisor" in first_message
    else:
        assert release == os.uname().release
        assert "gVisor" not in result.output
