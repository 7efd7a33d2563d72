"""Real servers for the test suite: Redis, the embedded PostgreSQL and S3 (moto), on free loopback ports
(or, given a host's address and the prefix that runs a command there, on a host of harness/netns.py)."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.local.postgres import EmbeddedPostgres, free_port


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class RedisServer:
    def __init__(
        self, port: int | None = None, *, host: str = "127.0.0.1", prefix: Sequence[str] = ()
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (make test installs it; or apt-get install redis-server)"
            )
        self.process = subprocess.Popen(
            [
                *self.prefix,
                binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                *self._open_to_host(),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, host=self.host)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _open_to_host(self) -> list[str]:
        """Off loopback Redis refuses clients without a password; on a test's own host, let them in."""
        return [] if self.host == "127.0.0.1" else ["--protected-mode", "no"]


class S3Server:
    """moto's standalone server: the S3 wire protocol on loopback, its objects in its memory.

    It takes any credentials; the tests' settings give it fixed ones, as a deployment gives its own.
    """

    ACCESS_KEY = "loopd-test-access"
    SECRET_KEY = "loopd-test-secret"  # moto checks no signature against it

    def __init__(
        self, port: int | None = None, *, host: str = "127.0.0.1", prefix: Sequence[str] = ()
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "moto.server",
                *("--host", self.host, "--port", str(self.port)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=60, host=self.host)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
        )

    def new_bucket(self) -> str:
        """A bucket of its own for one test."""
        name = f"loopd-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "loopd") -> dict[str, str]:
        """The settings (as LOOPD_ variables) that put a deployment's artifacts in `bucket`."""
        return {
            "LOOPD_ARTIFACTS_URL": f"s3://{bucket}/{prefix}",
            "LOOPD_S3_ENDPOINT_URL": self.endpoint_url,
            "LOOPD_S3_REGION": "us-east-1",
            "LOOPD_S3_ADDRESSING_STYLE": "path",
            "LOOPD_S3_ACCESS_KEY_ID": self.ACCESS_KEY,
            "LOOPD_S3_SECRET_ACCESS_KEY": self.SECRET_KEY,
        }


@contextmanager
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def server_root(prefix: str = "loopd-") -> Iterator[Path]:
    """A fresh folder an embedded PostgreSQL can live in, removed afterwards.

    Not under pytest's tmp dirs: those are private to root, and PostgreSQL runs as its own user.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[EmbeddedPostgres]:
    with server_root("loopd-pg-") as root:
        server = EmbeddedPostgres(root / "data")
        server.start()
        try:
            yield server
        finally:
            server.stop()
