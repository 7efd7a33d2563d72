"""A whole loopd deployment as separate OS processes on loopback: one gateway, N brains, N hands,
against a given PostgreSQL and Redis. Used by the end-to-end and the fault tests. With `hosts`, each
role named there runs on a host of its own (harness/netns.py), serving on that host's address."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import psycopg

from harness.netns import Host
from harness.processes import HIGH_RATE_LIMITS, LoopdProcess, ProcessGroup
from harness.waiting import eventually_sync
from services.core.bus import HandsInfo, build_bus
from services.core.keys import mint
from services.hands.server import STACK_LABEL
from services.local.postgres import free_port


@dataclass
class Cluster:
    url: str
    processes: ProcessGroup
    artifacts_dir: Path
    database_url: str
    bus_url: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        """What every request of the root tenant's admin carries."""
        return {"Authorization": f"Bearer {self.admin_key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers=self.headers)

    def brains(self) -> list[LoopdProcess]:
        return self.processes.named("brain-")

    def hands(self) -> list[LoopdProcess]:
        return self.processes.named("hands-")

    def metrics(self, process: LoopdProcess | None = None) -> str:
        """The /metrics page of a brain or hands process on its metrics port, or the gateway's."""
        port = next(
            (v for k, v in (process.env if process else {}).items() if k.endswith("_METRICS_PORT")), None
        )
        host = (process.env if process else {}).get("LOOPD_METRICS_HOST", "127.0.0.1")
        url = f"http://{host}:{port}/metrics" if port else f"{self.url}/metrics"
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
        return response.text

    def registry(self) -> list[HandsInfo]:
        """The hands registry as the brains read it: addresses and the runs each worker holds.

        The public API shows neither, so tests read the bus itself (on a loop of its own, so this
        works from sync and async tests alike).
        """

        async def read() -> list[HandsInfo]:
            bus = build_bus(self.bus_url)
            try:
                return await bus.list_hands()
            finally:
                await bus.aclose()

        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, read()).result()

    def lease_owner(self, run_id: str) -> LoopdProcess | None:
        """The brain process holding the run's unexpired lease, if any."""
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT owner FROM run_leases WHERE run_id = %s AND expires_at > now()", (run_id,)
            ).fetchone()
        if row is None:
            return None
        return next((p for p in self.brains() if p.env.get("LOOPD_BRAIN_ID") == row[0]), None)

    def wait_ready(self, hands: int, timeout: float = 60) -> None:
        def ready() -> bool:
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                listed = httpx.get(f"{self.url}/v1/hands", timeout=2, headers=self.headers)
            except httpx.TransportError:
                return False
            # Until the gateway reaches its bus, /v1/hands answers 503.
            return response.status_code == listed.status_code == 200 and len(listed.json()["data"]) >= hands

        try:
            eventually_sync(ready, timeout=timeout, interval=0.2)
        except AssertionError:
            raise AssertionError(f"the cluster did not become ready:\n{self.processes.logs()}") from None


@contextmanager
def running_cluster(
    root: Path,
    hosts: Mapping[str, Host] | None = None,
    /,
    *,
    database_url: str,
    bus_url: str,
    brains: int = 2,
    hands: int = 2,
    **settings: str,
) -> Iterator[Cluster]:
    """With an object store (LOOPD_ARTIFACTS_URL in `settings`), every process gets artifacts and data
    folders of its own, as on machines of their own: the bucket is all they share. `hosts` places
    roles ("gateway", "brain-1", "hands-2"...) on hosts of their own; it is positional so that no
    setting passed on as `**settings` can be taken for it."""
    hosts = hosts or {}
    port = free_port()
    admin_key = mint()
    env = {
        "LOOPD_DATABASE_URL": database_url,
        "LOOPD_BUS_URL": bus_url,
        "LOOPD_ARTIFACTS_DIR": str(root / "artifacts"),
        # Workspace disks too live under the test's folder, where the session's end unmounts leftovers.
        "LOOPD_DATA_DIR": str(root / "data"),
        "LOOPD_TENANT": f"t-{secrets.token_hex(4)}",
        "LOOPD_PORT": str(port),
        "LOOPD_LEASE_SECONDS": "5",
        "LOOPD_SWEEP_INTERVAL_SECONDS": "2",
        "LOOPD_WAKE_VISIBILITY_SECONDS": "10",
        # Each cluster is a stack of its own: its sandboxes and its hands port are its alone.
        "LOOPD_STACK_ID": (stack := f"test-{secrets.token_hex(4)}"),
        "LOOPD_HANDS_SECRET": secrets.token_urlsafe(24),
        "LOOPD_ADMIN_KEY": admin_key,
        # Every run is started and watched with the one admin key (a test may pass lower limits).
        **HIGH_RATE_LIMITS,
        **settings,
    }
    group = ProcessGroup(root, env)
    gateway_host = hosts["gateway"].address if "gateway" in hosts else "127.0.0.1"
    url = f"http://{gateway_host}:{port}"
    cluster = Cluster(url, group, root / "artifacts", database_url, bus_url, admin_key)

    def disks(name: str) -> dict[str, str]:
        if not settings.get("LOOPD_ARTIFACTS_URL"):
            return {}
        return {
            "LOOPD_ARTIFACTS_DIR": str(root / name / "artifacts"),
            "LOOPD_DATA_DIR": str(root / name / "data"),
        }

    def placed(name: str) -> dict[str, str]:
        """Where a role serves: its host's address, which is also what hands advertise."""
        host = hosts.get(name)
        if host is None:
            return {}
        if name == "gateway":
            return {"LOOPD_HOST": host.address}
        here = {"LOOPD_METRICS_HOST": host.address}
        if name.startswith("hands-"):
            here |= {"LOOPD_HANDS_LISTEN": f"{host.address}:0", "LOOPD_HANDS_ADVERTISE_HOST": host.address}
        return here

    def prefix(name: str) -> tuple[str, ...]:
        return tuple(hosts[name].prefix()) if name in hosts else ()

    try:
        group.start("gateway", "services.gateway", prefix("gateway"), **disks("gateway"), **placed("gateway"))
        for n in range(1, brains + 1):
            group.start(
                f"brain-{n}",
                "services.brain",
                prefix(f"brain-{n}"),
                LOOPD_BRAIN_ID=f"brain-{n}-{secrets.token_hex(3)}",
                LOOPD_BRAIN_METRICS_PORT=str(free_port()),
                **disks(f"brain-{n}"),
                **placed(f"brain-{n}"),
            )
        for n in range(1, hands + 1):
            group.start(
                f"hands-{n}",
                "services.hands",
                prefix(f"hands-{n}"),
                LOOPD_HANDS_ID=f"hands-{n}-{secrets.token_hex(3)}",
                LOOPD_HANDS_METRICS_PORT=str(free_port()),
                **disks(f"hands-{n}"),
                **placed(f"hands-{n}"),
            )
        cluster.wait_ready(hands)
        yield cluster
    finally:
        group.stop_all()
        remove_sandboxes(stack)


def remove_sandboxes(stack: str) -> None:
    """Remove what the stack's hands left: a worker that a test killed, or one stopped while it was
    still making a warm sandbox, leaves its containers (only this stack's: they carry its id)."""
    api = docker.APIClient()
    try:
        for container in api.containers(all=True, filters={"label": f"{STACK_LABEL}={stack}"}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                api.remove_container(container["Id"], v=True, force=True)
    finally:
        api.close()
