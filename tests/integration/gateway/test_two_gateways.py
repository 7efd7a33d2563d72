"""Two gateway processes on one PostgreSQL, started at the same moment on an empty database: they store
LOOPD_ADMIN_KEY once, a key revoked on one is refused by the other on its next request, and
neither writes a key to its log."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.processes import ProcessGroup
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.core import keys
from services.core.db.migrate import sync_url
from services.local.postgres import EmbeddedPostgres, free_port
from tests.integration.gateway.operations import SCRIPTED, error_code

NAMES = ("gateway-1", "gateway-2")


@dataclass
class Gateways:
    group: ProcessGroup
    urls: dict[str, str]
    database_url: str
    admin_key: str
    made: list[str]  # every key made while the gateways ran, to look for in their logs

    def client(self, name: str, key: str | None = None, *, header: str = "authorization") -> httpx.Client:
        presented = key or self.admin_key
        headers = (
            {"x-api-key": presented} if header == "x-api-key" else {"Authorization": f"Bearer {presented}"}
        )
        return httpx.Client(base_url=self.urls[name], headers=headers, timeout=10)

    def wait_healthy(self, name: str) -> None:
        def healthy() -> bool:
            assert self.group.processes[name].alive, self.group.logs()
            try:
                return httpx.get(f"{self.urls[name]}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually_sync(healthy, timeout=60, interval=0.2)

    def stored(self) -> tuple[int, int]:
        """Rows of the admin key, and audit entries of its making."""
        with psycopg.connect(sync_url(self.database_url).replace("+psycopg", "")) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM api_keys WHERE key_hash = %s", (keys.hash_key(self.admin_key),)
            ).fetchone()
            made = conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'key.created' AND object_id = %s",
                (keys.configured_key_id(self.admin_key),),
            ).fetchone()
        assert rows is not None and made is not None
        return rows[0], made[0]


@pytest.fixture(scope="module")
def empty_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A database nothing has migrated: the gateways' starts race to migrate it, too."""
    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER loopd')
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def gateways(
    empty_database: str, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateways]:
    root: Path = tmp_path_factory.mktemp("two-gateways")
    admin_key = keys.mint()
    env = {
        "LOOPD_ADMIN_KEY": admin_key,
        "LOOPD_DATABASE_URL": empty_database,
        "LOOPD_BUS_URL": redis.url,
        "LOOPD_ARTIFACTS_DIR": str(root / "artifacts"),
        "LOOPD_TENANT": f"t-{secrets.token_hex(4)}",
    }
    group = ProcessGroup(root, env)
    ports = {name: free_port() for name in NAMES}
    try:
        for name in NAMES:
            group.start(name, "services.gateway", LOOPD_PORT=str(ports[name]))
        started = Gateways(
            group,
            {n: f"http://127.0.0.1:{p}" for n, p in ports.items()},
            empty_database,
            admin_key,
            [admin_key],
        )
        for name in NAMES:
            started.wait_healthy(name)
        yield started
    finally:
        group.stop_all()


def test_gateways_starting_together_store_the_admin_key_once(gateways: Gateways) -> None:
    for name in NAMES:
        with gateways.client(name) as admin:
            listed = admin.get("/v1/keys")
            assert listed.status_code == 200, listed.text
            assert [k["name"] for k in listed.json()["data"]] == ["LOOPD_ADMIN_KEY"]
    assert gateways.stored() == (1, 1)

    gateways.group.restart("gateway-1")
    gateways.wait_healthy("gateway-1")
    with gateways.client("gateway-1") as admin:
        assert admin.get("/v1/keys").status_code == 200
    assert gateways.stored() == (1, 1)
    for name in NAMES:
        log = gateways.group.processes[name].log_path.read_text()
        assert "Traceback" not in log and " ERROR " not in log, log


@pytest.mark.parametrize(
    ("minted_on", "revoked_on"), [("gateway-1", "gateway-2"), ("gateway-2", "gateway-2")]
)
def test_a_key_revoked_on_one_gateway_is_refused_by_the_other_at_once(
    gateways: Gateways, minted_on: str, revoked_on: str
) -> None:
    with gateways.client(minted_on) as admin:
        created = admin.post("/v1/keys", json={"name": "short-lived", "role": "member"})
    assert created.status_code == 201, created.text
    key_id, key = created.json()["id"], created.json()["key"]
    gateways.made.append(key)
    for name in NAMES:
        with gateways.client(name, key, header="x-api-key") as member:
            assert member.get("/v1/runs").status_code == 200

    with gateways.client(revoked_on) as admin:
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
    # Not eventually: the very next request, on either gateway, in either header.
    for name in NAMES:
        for header in ("authorization", "x-api-key"):
            with gateways.client(name, key, header=header) as member:
                refused = member.get("/v1/runs")
                assert (refused.status_code, error_code(refused)) == (401, "api_key_revoked"), refused.text


def test_a_stream_ends_once_its_key_is_revoked(gateways: Gateways) -> None:
    with gateways.client("gateway-1") as admin:
        created = admin.post("/v1/keys", json={"name": "streaming", "role": "viewer"})
        # No brain serves these gateways: the run stays queued, and its stream stays open.
        run = admin.post("/v1/runs", json={"agent": SCRIPTED, "input": "watched"})
    assert created.status_code == 201 and run.status_code == 201, run.text
    key_id, key = created.json()["id"], created.json()["key"]
    gateways.made.append(key)
    path = f"/v1/runs/{run.json()['id']}/events/stream"

    with gateways.client("gateway-2", key) as viewer:
        with viewer.stream("GET", path, timeout=httpx.Timeout(10, read=30)) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            while not next(lines).startswith("id: 2"):
                pass  # the log so far, run.created and the user message
            with gateways.client("gateway-1") as admin:
                assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
            # Pings keep an open stream talking, so the clock, not the read timeout, bounds it.
            deadline = time.monotonic() + 10
            rest = []
            for line in lines:
                assert time.monotonic() < deadline, "the stream outlived its key"
                rest.append(line)
        assert not any(line.startswith("id:") for line in rest), rest
        again = viewer.get(path)
        assert (again.status_code, error_code(again)) == (401, "api_key_revoked")


def test_no_key_reaches_either_gateways_log(gateways: Gateways) -> None:
    with gateways.client("gateway-1") as admin:
        made = admin.post("/v1/tenants", json={"id": f"logged-{secrets.token_hex(4)}"})
        assert made.status_code == 201, made.text
        tenant_key = made.json()["admin_key"]["key"]
        gateways.made.append(tenant_key)
        extra = admin.post(f"/v1/tenants/{made.json()['id']}/keys", json={"name": "extra", "role": "viewer"})
        assert extra.status_code == 201, extra.text
        gateways.made.append(extra.json()["key"])
    unknown = keys.mint()
    gateways.made.append(unknown)
    for name in NAMES:
        for key in gateways.made:
            for header in ("authorization", "x-api-key"):
                with gateways.client(name, key, header=header) as client:
                    client.get("/v1/runs")
                    client.post("/v1/runs", json={"agent_id": "nowhere", "input": "x"})
                    client.post(
                        "/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
                    )
                    client.get("/v1/nowhere")
    gateways.group.restart("gateway-2")
    gateways.wait_healthy("gateway-2")

    for name in NAMES:
        log = gateways.group.processes[name].log_path.read_text()
        assert "GET /v1/runs" in log  # the access log is on: requests are logged, their keys are not
        for key in gateways.made:
            assert key not in log and key[len(keys.KEY_PREFIX) + 8 :] not in log, f"{name} logged a key"
