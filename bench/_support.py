"""Shared pieces of the benchmarks: servers on loopback, percentiles, tables, the machine, disk usage."""

from __future__ import annotations

import math
import os
import platform
import secrets
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from harness.servers import RedisServer
from services.local.postgres import APP_ROLE, EmbeddedPostgres


@dataclass(frozen=True)
class Servers:
    root: Path
    postgres: EmbeddedPostgres
    redis: RedisServer | None

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def database(self, name: str) -> str:
        """A fresh database on the same server, created on first use; its SQLAlchemy URL."""
        # loopd's own role may not create databases: the server's superuser makes them, owned by it.
        with psycopg.connect(self.postgres.admin_dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        return self.database_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def servers(*, redis: bool = True) -> Iterator[Servers]:
    """Its own PostgreSQL (and Redis) on loopback, in a fresh directory removed afterwards."""
    # PostgreSQL runs as an unprivileged user when we are root, so its parent must be readable.
    root = Path(tempfile.mkdtemp(prefix="loopd-bench-"))
    root.chmod(0o755)
    postgres = EmbeddedPostgres(root / "pg")
    redis_server = RedisServer() if redis else None
    postgres.start()
    try:
        if redis_server is not None:
            redis_server.start()
        yield Servers(root, postgres, redis_server)
    finally:
        if redis_server is not None:
            redis_server.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def plain_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL, for psycopg and the peers."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def random_text(size: int) -> str:
    """Text that does not compress, so no system's stored size is flattered by TOAST compression."""
    return secrets.token_urlsafe(size)[:size]


def stored_bytes(url: str, *, full: bool = False) -> int:
    """Tables, indexes and TOAST of every user table in the database, after VACUUM (FULL) ANALYZE."""
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)")
        row = conn.execute(
            """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'm')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%%'
            """
        ).fetchone()
    return int(row[0]) if row else 0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered) - 1e-9)
    return ordered[min(len(ordered), max(1, rank)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so the output pastes into docs/performance.md as it is."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n{title}\n", line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def machine() -> str:
    """The facts a figure depends on: cores, CPU model, memory, Python."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM, Python {platform.python_version()}; "
        f"load average {load} (other work on the machine skews every figure)"
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and every process below it, reaped children included."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command's closing parenthesis: state ppid ... utime stime cutime cstime.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15])
    tree, frontier = set(), {pid}
    while frontier:
        tree |= frontier
        frontier = {child for child, parent in parents.items() if parent in frontier} - tree
    return sum(times.get(p, 0) for p in tree) / ticks
