"""Starts loopd roles as real OS processes on loopback (or each on a host of its own, see
harness/netns.py), each with its own log file, and restarts them with the same identity after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# For gateways that clusters, benchmarks and the API contract test start: one admin key sends all
# their requests, far more than the per-key defaults allow (60 writes and 600 reads a minute), and
# they test the rest of loopd, not the limiter (tests/integration/gateway/test_rate_limits.py does).
# Limits this high, rather than none, still send every request through the Redis limiter.
HIGH_RATE_LIMITS = {"LOOPD_RATE_LIMIT_READS": "1000000/minute", "LOOPD_RATE_LIMIT_WRITES": "1000000/minute"}


@dataclass
class LoopdProcess:
    name: str
    module: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    prefix: tuple[str, ...] = ()  # what the command runs under: entering the role's host, say

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """The processes one test started; it stops exactly those, by PID."""

    log_dir: Path
    base_env: dict[str, str]
    processes: dict[str, LoopdProcess] = field(default_factory=dict)

    def start(self, name: str, module: str, prefix: tuple[str, ...] = (), **env: str) -> LoopdProcess:
        log_path = self.log_dir / f"{name}.log"
        merged = {**os.environ, **self.base_env, **env, "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as log:
            # A prefix such as nsenter execs the command in place: the PID is still the role's own.
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", module], stdout=log, stderr=subprocess.STDOUT, env=merged
            )
        started = LoopdProcess(name, module, env, process, log_path, prefix)
        self.processes[name] = started
        return started

    def restart(self, name: str) -> LoopdProcess:
        """Start a stopped or killed role again with the same module and identity."""
        previous = self.processes[name]
        previous.stop()
        return self.start(name, previous.module, previous.prefix, **previous.env)

    def named(self, prefix: str) -> list[LoopdProcess]:
        return [p for name, p in self.processes.items() if name.startswith(prefix)]

    def stop_all(self) -> None:
        for started in reversed(list(self.processes.values())):
            started.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (exit {p.process.poll()})\n{p.log_tail()}" for p in self.processes.values()
        )
