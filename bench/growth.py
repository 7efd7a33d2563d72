"""How a step's cost and the bytes stored grow with the run: 200 steps that each add a 1 KB message,
for loopd, DBOS and LangGraph (PostgresSaver, durability="sync") on one PostgreSQL.

    .venv/bin/python -m bench.growth [--steps 200] [--trials 3] [--message-bytes 1024]

Per-step time is taken around step 10 and around the last step (steps 6-15 and the last 10 of every
run, pooled over the trials). Bytes stored are `pg_total_relation_size` (table, indexes and TOAST) of
every table in each system's own database after VACUUM ANALYZE, minus the same sum before the first
run, divided by the number of runs; the VACUUM FULL column shows the same data compacted. Messages
are random text, so compression flatters no one. The step drivers are those of bench/step.py.
"""

from __future__ import annotations

import argparse

from bench._support import machine, median, percentile, random_text, servers, stored_bytes, table
from bench.step import DbosSteps, LangGraphSteps, LoopdSteps, StepDriver

EARLY = slice(5, 15)  # steps 6..15, around step 10


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3, help="runs per system")
    parser.add_argument("--message-bytes", type=int, default=1024)
    args = parser.parse_args()
    late = slice(args.steps - 10, args.steps)
    with servers() as running:
        systems: list[StepDriver] = [LoopdSteps(running), DbosSteps(running), LangGraphSteps(running)]
        try:
            empty = {s.name: stored_bytes(s.database_url) for s in systems}
            early: dict[str, list[float]] = {s.name: [] for s in systems}
            last: dict[str, list[float]] = {s.name: [] for s in systems}
            for _ in range(args.trials):
                for system in systems:
                    texts = [random_text(args.message_bytes) for _ in range(args.steps)]
                    samples = system.run(texts)
                    early[system.name].extend(samples[EARLY])
                    last[system.name].extend(samples[late])
            stored = {s.name: (stored_bytes(s.database_url) - empty[s.name]) / args.trials for s in systems}
            compact = {
                s.name: (stored_bytes(s.database_url, full=True) - empty[s.name]) / args.trials
                for s in systems
            }
        finally:
            for system in reversed(systems):
                system.close()
    report(early, last, stored, compact, args)


def report(
    early: dict[str, list[float]],
    last: dict[str, list[float]],
    stored: dict[str, float],
    compact: dict[str, float],
    args: argparse.Namespace,
) -> None:
    ms, kib = 1000.0, 1024.0
    payload = args.steps * args.message_bytes
    print(f"machine: {machine()}")
    rows = [
        [
            name,
            median(early[name]) * ms,
            percentile(early[name], 0.95) * ms,
            median(last[name]) * ms,
            percentile(last[name], 0.95) * ms,
            median(last[name]) / median(early[name]),
        ]
        for name in early
    ]
    print(
        table(
            f"per-step time, {args.trials} runs x {args.steps} steps of {args.message_bytes} B per system",
            [
                "system",
                "step ~10 median [ms]",
                "p95 [ms]",
                f"step ~{args.steps} median [ms]",
                "p95 [ms]",
                f"step {args.steps} / step 10",
            ],
            rows,
        )
    )
    rows = [
        [
            name,
            payload / kib,
            stored[name] / kib,
            stored[name] / payload,
            compact[name] / kib,
            compact[name] / payload,
        ]
        for name in early
    ]
    print(
        table(
            "bytes stored per run (tables + indexes + TOAST, minus the empty schema)",
            [
                "system",
                "raw payload [KiB]",
                "stored [KiB]",
                "stored / payload",
                "after VACUUM FULL [KiB]",
                "compacted / payload",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
