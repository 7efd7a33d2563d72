"""Partitions, not only kills: every role on a host of its own (a network namespace on a private
bridge), and mid-run the link between two of them goes silent for longer than a lease, then heals.
Between a brain and the hands, a brain and PostgreSQL, hands and the object store: every run
completes with exactly the expected workspace and a gapless log, and no committed model call is
made again."""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import running_cluster
from harness.model_server import FakeModelServer
from harness.netns import NETNS_DIR, Cut, Host, Network, in_namespace, private_network
from harness.servers import RedisServer, S3Server
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres
from tests.faults.conftest import FaultCluster, assert_gapless

pytestmark = [pytest.mark.docker, pytest.mark.timeout(400)]

RUNS = 6
# Longer than a lease (3 s here) and the hands' registry TTL (6 s), and than gRPC servers wait for
# unacknowledged data (20 s from the last data sent, often seconds before the cut): whatever times
# out on silence does so while the link is cut.
CUT_SECONDS = 15.0
ROLES = ("postgres", "redis", "s3", "model", "gateway", "brain-1", "brain-2", "hands-1", "hands-2")

SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "input": {"path": "notes.txt", "content": "alpha\n"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "echo started; sleep 3; echo beta >> notes.txt"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "mkdir -p sub; echo gamma > sub/g.txt"}}]},
    {"tool_calls": [{"name": "bash", "input": {"command": "sleep 1; echo delta >> notes.txt"}}]},
    {"text": "finished"},
]
EXPECTED = {"notes.txt": b"alpha\nbeta\ndelta\n", "sub/g.txt": b"gamma\n"}


class Partitioned:
    def __init__(self, faults: FaultCluster, network: Network) -> None:
        self.faults = faults
        self.network = network

    def host(self, role: str) -> Host:
        return self.network.hosts[role]

    def hands_hosts(self) -> list[Host]:
        return [self.host(p.name) for p in self.faults.cluster.hands()]


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partitioned]:
    with partitioned_cluster(tmp_path_factory.mktemp("partitions")) as cluster:
        yield cluster


@contextmanager
def partitioned_cluster(root: Path) -> Iterator[Partitioned]:
    """The fault cluster with every server and role on a host of its own, sharing only an object store."""
    with ExitStack() as stack:
        network = stack.enter_context(private_network())
        hosts = {role: network.add_host(role) for role in ROLES}
        pg_root = Path(tempfile.mkdtemp(prefix="loopd-partitions-pg-"))
        stack.callback(shutil.rmtree, pg_root, ignore_errors=True)
        pg_root.chmod(0o755)
        postgres = EmbeddedPostgres(
            pg_root / "data",
            host=hosts["postgres"].address,
            client_network=f"{network.subnet}.0/24",
            prefix=hosts["postgres"].prefix(),
        )
        postgres.start()
        stack.callback(postgres.stop)
        redis = RedisServer(host=hosts["redis"].address, prefix=hosts["redis"].prefix())
        redis.start()
        stack.callback(redis.stop)
        s3 = S3Server(host=hosts["s3"].address, prefix=hosts["s3"].prefix())
        s3.start()
        stack.callback(s3.stop)
        model = FakeModelServer(by_turn=True)
        model.start(hosts["model"].listen())
        stack.callback(model.stop)
        cluster = stack.enter_context(
            running_cluster(
                root,
                hosts,
                database_url=postgres.url,
                bus_url=redis.url,
                brains=2,
                hands=2,
                LOOPD_OPENAI_BASE_URL=model.openai_base_url,
                LOOPD_OPENAI_API_KEY="test-key",
                LOOPD_LEASE_SECONDS="3",
                LOOPD_SWEEP_INTERVAL_SECONDS="1",
                **s3.env(s3.new_bucket()),
            )
        )
        yield Partitioned(FaultCluster(cluster, postgres, redis, model), network)


def start_runs(faults: FaultCluster) -> list[str]:
    faults.use_script(SCRIPT)
    return [faults.start_run(name=f"partition-{n}") for n in range(RUNS)]


def in_a_tool_call(faults: FaultCluster, run_ids: list[str]) -> str:
    """A run whose tool call has started and not yet finished."""

    def running() -> str | None:
        for run_id in run_ids:
            types = [e["type"] for e in faults.events(run_id)]
            if types.count("tool.call") > types.count("tool.result"):
                return run_id
        return None

    return faults.until(running, run_ids, timeout=60, interval=0.1)


def hold(seconds: float, watch: Callable[[], None] = lambda: None) -> None:
    """Keep the link cut for `seconds` (the partition's length, not a wait for a condition), calling
    `watch` all along to see what the rest of the cluster does meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watch()
        time.sleep(0.2)


def assert_all_exact(faults: FaultCluster, run_ids: list[str]) -> None:
    def finished() -> bool:
        return all(faults.run(r)["status"] in ("completed", "failed", "cancelled") for r in run_ids)

    faults.until(finished, run_ids, timeout=150, interval=0.5)
    expected = {path: hashlib.sha256(body).hexdigest() for path, body in EXPECTED.items()}
    with faults.cluster.client() as api:
        for run_id in run_ids:
            run = faults.run(run_id)
            assert run["status"] == "completed", (run["error"], [e["type"] for e in faults.events(run_id)])
            listed = api.get(f"/v1/runs/{run_id}/artifacts").json()["data"]
            assert {a["path"]: a["sha256"] for a in listed} == expected, run_id
            events = faults.events(run_id)
            assert_gapless(events)
            results = [e["data"]["call_id"] for e in events if e["type"] == "tool.result"]
            assert len(results) == len(set(results)) == len(SCRIPT) - 1, run_id
            faults.assert_no_committed_model_call_repeated(run_id)


def spanning(faults: FaultCluster, run_ids: list[str], cut_at: float, healed_at: float) -> list[str]:
    """Tool calls made before the cut whose results were committed only after the heal."""
    found = []
    for run_id in run_ids:
        made: dict[str, float] = {}
        for event in faults.events(run_id):
            at, call_id = datetime.fromisoformat(event["at"]).timestamp(), event["data"].get("call_id")
            if event["type"] == "tool.call":
                made[call_id] = at
            elif event["type"] == "tool.result" and made.get(call_id, at) < cut_at <= healed_at <= at:
                found.append(call_id)
    return found


def connecting(a: Host, b: Host, port: int) -> str:
    """How a TCP connection from a to b's port fares within a second: "open", "timeout" or "reset"."""

    def connect() -> str:
        with socket.socket() as probe:
            probe.settimeout(1)
            try:
                probe.connect((b.address, port))
            except TimeoutError:
                return "timeout"
            except ConnectionRefusedError:
                return "reset"
            return "open"

    return in_namespace(a.netns, connect)


@pytest.mark.parametrize(("how", "seen"), [("drop", "timeout"), ("reset", "reset")])
def test_a_cut_link_fails_both_ways_until_healed(how: Cut, seen: str) -> None:
    with private_network() as network:
        a, b = network.add_host("a"), network.add_host("b")
        c = network.add_host("c")
        server = b.listen()
        port = server.getsockname()[1]
        try:
            assert connecting(a, b, port) == "open"
            with network.partition(a, b, how=how):
                assert connecting(a, b, port) == seen
                assert connecting(b, a, port) == seen  # nothing listens there: a reset if it got there
                assert connecting(c, b, port) == "open"  # only this link is cut
            assert connecting(a, b, port) == "open"
        finally:
            server.close()
    assert not any(Path(NETNS_DIR, host.netns).exists() for host in (a, b, c))
    assert not Path(NETNS_DIR, network.switch).exists()


@pytest.mark.parametrize("how", ["drop", "reset"])
def test_a_brain_cut_off_from_the_hands_mid_call(partitioned: Partitioned, how: Cut) -> None:
    faults = partitioned.faults
    run_ids = start_runs(faults)
    run_id = in_a_tool_call(faults, run_ids)
    owner = eventually_sync(lambda: faults.lease_owner(run_id), timeout=30)
    with partitioned.network.partition(partitioned.host(owner.name), *partitioned.hands_hosts(), how=how):
        hold(CUT_SECONDS)
    assert_all_exact(faults, run_ids)


def test_a_brain_cut_off_from_postgres_mid_call(partitioned: Partitioned) -> None:
    faults = partitioned.faults
    run_ids = start_runs(faults)
    run_id = in_a_tool_call(faults, run_ids)
    stale = eventually_sync(lambda: faults.lease_owner(run_id), timeout=30)
    owners: set[str] = set()

    def watch_the_lease() -> None:
        holder = faults.lease_owner(run_id)
        if holder is not None:
            owners.add(holder.name)

    with partitioned.network.partition(partitioned.host(stale.name), partitioned.host("postgres")):
        hold(CUT_SECONDS, watch_the_lease)
    # Its lease lapsed while the brain could not renew it, and another brain took the run over.
    assert owners - {stale.name}, (owners, faults.report([run_id]))
    # Once healed, whatever the stale brain still meant to write is refused (as a lost lease, or
    # as a conflict with the run the other brain has since finished): every call has one result.
    assert_all_exact(faults, run_ids)


def test_hands_cut_off_from_the_object_store_mid_call(partitioned: Partitioned) -> None:
    faults = partitioned.faults
    run_ids = start_runs(faults)
    run_id = in_a_tool_call(faults, run_ids)
    holder = eventually_sync(lambda: faults.hands_holding(run_id), timeout=30)
    cut_at = time.time()
    with partitioned.network.partition(partitioned.host(holder.name), partitioned.host("s3")):
        hold(CUT_SECONDS)
    healed_at = time.time()
    assert_all_exact(faults, run_ids)
    # A call's snapshot waited for the bucket through the cut, and its result came after it.
    assert spanning(faults, run_ids, cut_at, healed_at)
