"""Hosts of their own for one test's processes: Linux network namespaces on a private bridge, and
partitions between two of them, made and healed mid-run.

Every namespace, link and address is this network's own: names carry a random tag (other stacks
share the machine), addresses lie in one /24 of 10.231.0.0/16 that no interface here uses yet, and
closing removes exactly what was made. The bridge lives in a namespace of its own, so bridged
packets never meet the host's firewall (an engine's FORWARD chain drops them). The test's own
process reaches every host through one veth on the bridge.

A role runs in its host with `nsenter --net`, which changes only the network namespace: its mounts
(workspace disks) stay the host's, where the container engine sees them, and the engine's unix
socket is a path, reachable from any network namespace.
"""

from __future__ import annotations

import ctypes
import random
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

T = TypeVar("T")
# How a cut link fails: "drop" swallows packets, as a dead link or a lost route does (no resets,
# no unreachable replies: only timeouts notice); "reset" answers every TCP segment with a reset, as
# a firewall that rejects does.
Cut = Literal["drop", "reset"]
_VERDICTS: dict[str, tuple[str, ...]] = {
    "drop": ("-j", "DROP"),
    # Resets themselves pass, or each side would swallow the other's.
    "reset": ("-p", "tcp", "!", "--tcp-flags", "RST", "RST", "-j", "REJECT", "--reject-with", "tcp-reset"),
}
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_SUBNETS = "10.231"


@dataclass(frozen=True)
class Host:
    """A role's machine: its namespace and its one address."""

    role: str
    netns: str
    address: str

    def prefix(self) -> list[str]:
        """What a command is run under to run on this host."""
        return ["nsenter", f"--net={NETNS_DIR}/{self.netns}", "--"]

    def listen(self, port: int = 0) -> socket.socket:
        """A listening TCP socket of this host, for a server the test runs in its own threads."""
        return in_namespace(self.netns, lambda: _listening(self.address, port))


@dataclass
class Network:
    tag: str
    subnet: str  # the first three octets, "10.231.N"
    hosts: dict[str, Host] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list)  # namespaces, in the order made
    _root_link: str = ""

    @property
    def switch(self) -> str:
        return f"loopd-{self.tag}-net"

    @property
    def gateway_address(self) -> str:
        """The address of the test's own process on the bridge."""
        return f"{self.subnet}.1"

    def add_host(self, role: str) -> Host:
        n = len(self.hosts) + 1
        host = Host(role, f"loopd-{self.tag}-{n}", f"{self.subnet}.{10 + n}")
        self._add_namespace(host.netns)
        port = f"p{n}"
        _ip(
            "link",
            "add",
            "eth0",
            "netns",
            host.netns,
            "type",
            "veth",
            *("peer", "name", port, "netns", self.switch),
        )
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        self.hosts[role] = host
        return host

    def cut(self, a: Host, b: Host, how: Cut = "drop") -> None:
        """Partition a from b: each fails what the other sends it, both ways."""
        for near, far in ((a, b), (b, a)):
            _iptables(near, "-I", "INPUT", "-s", far.address, *_VERDICTS[how])

    def heal(self, a: Host, b: Host, how: Cut = "drop") -> None:
        for near, far in ((a, b), (b, a)):
            _iptables(near, "-D", "INPUT", "-s", far.address, *_VERDICTS[how])

    @contextmanager
    def partition(self, a: Host, *others: Host, how: Cut = "drop") -> Iterator[None]:
        """a cut from each of `others` for the block's duration, healed afterwards whatever happens."""
        cut: list[Host] = []
        try:
            for other in others:
                self.cut(a, other, how)
                cut.append(other)
            yield
        finally:
            for other in cut:
                self.heal(a, other, how)

    def close(self) -> None:
        """Remove every namespace this network made (their veths go with them) and its root link."""
        for netns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        if self._root_link:
            subprocess.run(["ip", "link", "del", self._root_link], capture_output=True, check=False)
        self._made.clear()

    def _add_namespace(self, netns: str) -> None:
        _run("ip", "netns", "add", netns)
        self._made.append(netns)

    def _open(self) -> None:
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        self._root_link = f"lpd{self.tag}"
        _ip("link", "add", self._root_link, "type", "veth", "peer", "name", "p0", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", "p0", "master", "br0", "up")
        _ip("addr", "add", f"{self.gateway_address}/24", "dev", self._root_link)
        _ip("link", "set", self._root_link, "up")


@contextmanager
def private_network() -> Iterator[Network]:
    """A bridge for hosts the test adds; everything made is removed on exit, failed or not."""
    network = Network(secrets.token_hex(4), _free_subnet())
    try:
        network._open()
        yield network
    finally:
        network.close()


def in_namespace(netns: str, work: Callable[[], T]) -> T:
    """Run `work` on a thread that has entered the namespace: the sockets it makes belong there.

    setns changes only the calling thread's namespace, so the test's other threads stay home.
    """
    result: list[T] = []
    errors: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"{NETNS_DIR}/{netns}") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            result.append(work())
        except BaseException as error:  # handed to the caller's thread
            errors.append(error)

    thread = threading.Thread(target=enter_and_work, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _listening(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    return sock


def _free_subnet() -> str:
    """A 10.231.N /24 no interface of this machine has an address in (other tests may hold some)."""
    taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    candidates = [n for n in range(256) if f" {_SUBNETS}.{n}." not in taken]
    if not candidates:
        raise RuntimeError(f"every /24 of {_SUBNETS}.0.0/16 is in use")
    return f"{_SUBNETS}.{random.choice(candidates)}"


def _iptables(host: Host, *rule: str) -> None:
    _run(*host.prefix(), "iptables", "-w", *rule)


def _ip(*args: str) -> None:
    _run("ip", *args)


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
