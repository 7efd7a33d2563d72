"""Session-wide real servers: one embedded PostgreSQL, one Redis and one S3 server, on free loopback
ports, and a private config file for the `loopd` CLI.

Tests isolate themselves with random ids rather than fresh servers; tests that need a pristine
database create their own. Workspace disks that tests leave mounted are unmounted at the end.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from harness.servers import RedisServer, S3Server, postgres_server, redis_server, s3_server
from services.core.db.migrate import upgrade
from services.local.postgres import EmbeddedPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    upgrade(postgres.url)
    return postgres.url


@pytest.fixture
def fresh_database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """An empty database of its own, for tests of the migrations themselves."""
    name = f"test_{secrets.token_hex(6)}"
    admin = postgres.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER loopd')
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server) -> dict[str, str]:
    """The settings of a deployment whose artifacts live in a bucket of this test's own."""
    return s3.env(s3.new_bucket())


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[object]:
    from services.core.db.engine import create_engine
    from services.core.settings import Settings

    built = create_engine(Settings(database_url=database_url), pool_size=5)
    yield built
    await built.dispose()


@pytest.fixture(scope="session", autouse=True)
def private_cli_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `loopd` CLI's config file, and the local stack's copy of its key, go to this session's
    temporary folder (here and in every process a test starts), never to the user's own."""
    path = tmp_path_factory.mktemp("cli-config") / "config.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPD_CONFIG", str(path))
        for name in ("LOOPD_API_KEY", "LOOPD_TOKEN"):
            patch.delenv(name, raising=False)
        yield path


@pytest.fixture(scope="session", autouse=True)
def no_disk_left_mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Unmount whatever workspace disk a test left under this session's temporary folders (a container
    removed behind its driver's back leaves its disk mounted)."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mount_point = line.split()[1]
        if mount_point.startswith(base) and "/workspaces/disk-" in mount_point:
            subprocess.run(["umount", "--lazy", mount_point], check=False)


@pytest.fixture
def loop_disks() -> None:
    """Bounded workspaces need root, mount and mkfs.ext4, which `make test` sets up: without them
    the promise is untested, so that is a failure here, never a skip."""
    from services.hands.sandbox.disks import loop_disks_work

    assert loop_disks_work(), "loop disks need root, mount and mkfs.ext4: run `make test` as root"
