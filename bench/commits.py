"""How many small durable commits a second this machine's PostgreSQL takes: the ceiling against which
loopd's commits per model turn (bench/scale.py) are read in docs/scaling.md.

    .venv/bin/python -m bench.commits [--clients 8] [--seconds 20] [--payload-bytes 600]

Starts its own embedded PostgreSQL (`fsync=on`, as every benchmark here) and runs `pgbench` with one
statement per transaction: the insert of one row shaped like an event (a run id, a sequence number,
a type and a JSON payload of `--payload-bytes` random characters), from `--clients` connections at
once, so that group commit can share each WAL flush the way loopd's brains and gateways share it.
"""

from __future__ import annotations

import argparse
import re
import subprocess

import psycopg

from bench._support import machine, plain_url, random_text, servers
from services.local.postgres import binaries_dir

SCRIPT = """\\set seq random(1, 1000000000)
INSERT INTO bench_events (run_id, seq, type, payload)
VALUES ('run-' || :client_id, :seq, 'model.response', '{{"text": "{text}"}}');
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--payload-bytes", type=int, default=600)
    args = parser.parse_args()
    with servers(redis=False) as running:
        with psycopg.connect(plain_url(running.database_url), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_events (id bigserial PRIMARY KEY, run_id text NOT NULL, "
                "seq bigint NOT NULL, type text NOT NULL, payload jsonb NOT NULL, "
                "at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute("CREATE INDEX ON bench_events (run_id, seq)")
        script = running.root / "insert.sql"
        script.write_text(SCRIPT.format(text=random_text(args.payload_bytes)))
        done = subprocess.run(
            [
                str(binaries_dir() / "pgbench"),
                "--no-vacuum",
                f"--client={args.clients}",
                "--jobs=2",
                f"--time={args.seconds}",
                f"--file={script}",
                plain_url(running.database_url),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    print(f"machine: {machine()}")
    print(
        f"pgbench, {args.clients} clients for {args.seconds} s, one {args.payload_bytes}-byte event insert "
        f"per transaction: {match.group(1) if match else '?'} commits per second, "
        f"latency average {latency.group(1) if latency else '?'} ms"
    )


if __name__ == "__main__":
    main()
