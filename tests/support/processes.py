"""Starts loopd roles as real OS processes on loopback, each with its own log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopdProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
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
    processes: list[LoopdProcess] = field(default_factory=list)

    def start(self, name: str, module: str, **env: str) -> LoopdProcess:
        log_path = self.log_dir / f"{name}.log"
        merged = {**os.environ, **self.base_env, **env, "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module], stdout=log, stderr=subprocess.STDOUT, env=merged
            )
        started = LoopdProcess(name, process, log_path)
        self.processes.append(started)
        return started

    def stop_all(self) -> None:
        for started in reversed(self.processes):
            started.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (exit {p.process.poll()})\n{p.log_tail()}" for p in self.processes)
