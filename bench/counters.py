"""What PostgreSQL wrote and what Redis was asked, between two moments: the counters behind the capacity
model in docs/scaling.md.

PostgreSQL: the WAL written (`pg_current_wal_lsn()` before and after) and, read back from that WAL
with `pg_waldump --stats=record`, its commit records. A commit record is a transaction that wrote
something, the kind that waits for the WAL flush; read-only transactions write none, so they do not
count. The server's own statistics (`pg_stat_database.xact_commit`) would count those too, but reach
the view only when a backend flushes them, up to ten seconds late, which makes a before/after
difference unreliable. Redis: `INFO commandstats` (calls per command) and `INFO stats` (bytes in and
out), which Redis counts at once.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from bench._support import plain_url
from services.local.postgres import binaries_dir


def wal_lsn(database_url: str) -> str:
    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wal_bytes(database_url: str, start: str, end: str) -> int:
    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (end, start)).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class WalRecords:
    """Records of one WAL range by type (`Transaction/COMMIT`, `Heap/INSERT`, ...): count and bytes."""

    count: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)  # record + full-page images, in bytes

    @property
    def commits(self) -> int:
        return self.count.get("Transaction/COMMIT", 0)


def wal_records(data_dir: Path, start: str, end: str) -> WalRecords:
    """The records between two LSNs, read from the server's pg_wal with pg_waldump."""
    if start == end:
        return WalRecords()  # nothing written; pg_waldump refuses an empty range
    done = subprocess.run(
        [
            str(binaries_dir() / "pg_waldump"),
            f"--path={data_dir / 'pg_wal'}",
            f"--start={start}",
            f"--end={end}",
            "--stats=record",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    records = WalRecords()
    for line in done.stdout.splitlines():
        # "Heap/INSERT   1234 ( 12.34)   56789 ( 12.34)   0 (  0.00)   56789 ( 12.34)": name, count,
        # record bytes, full-page-image bytes, both together, each with its share in parentheses.
        fields = re.sub(r"\([^)]*\)", " ", line).split()
        if len(fields) == 5 and "/" in fields[0] and all(f.isdigit() for f in fields[1:]):
            records.count[fields[0]] = int(fields[1])
            records.size[fields[0]] = int(fields[4])
    return records


@dataclass(frozen=True)
class RedisCounters:
    calls: dict[str, int]  # command (lower case) -> calls
    bytes_in: int
    bytes_out: int

    def since(self, before: RedisCounters) -> RedisCounters:
        calls = {name: n - before.calls.get(name, 0) for name, n in self.calls.items()}
        return RedisCounters(
            {name: n for name, n in calls.items() if n},
            self.bytes_in - before.bytes_in,
            self.bytes_out - before.bytes_out,
        )


def redis_counters(url: str) -> RedisCounters:
    client = redis.Redis.from_url(url)
    try:
        commands = client.info("commandstats")
        stats = client.info("stats")
    finally:
        client.close()
    calls = {
        name.removeprefix("cmdstat_"): int(values["calls"])
        for name, values in commands.items()
        if isinstance(values, dict)
    }
    return RedisCounters(calls, int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"]))
