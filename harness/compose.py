"""docker-compose.yml brought up by a test: every image built without a registry (deploy/offline.sh),
a project folder whose .env holds what deploy/compose-env.sh wrote, and a project name that is also
the stack id, with the gateway on a free loopback port.

Everything the stack makes carries that name: compose labels its containers, volumes and networks
with the project, and hands label their sandboxes with the stack id. Bringing it down removes those
and nothing else, so stacks of other tests on the same engine are left alone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx

from harness.waiting import eventually_sync
from services.local.postgres import free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
STACK_LABEL = "loopd.stack"
Filters = dict[str, str | list[str] | bool]


def compose_command() -> list[str]:
    """The compose CLI this machine has: the Python docker-compose, or the `docker compose` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    raise RuntimeError(
        "neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)"
    )


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@dataclass
class ComposeStack:
    name: str
    project_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_key(self) -> str:
        return read_env(self.project_dir / ".env")["LOOPD_ADMIN_KEY"]

    @property
    def image(self) -> str:
        return read_env(self.project_dir / ".env")["LOOPD_IMAGE"]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.admin_key}"}
        )

    def env(self) -> dict[str, str]:
        """The shell compose runs in: this stack's settings, none of the caller's LOOPD_* ones."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPD_")}
        env.update(LOOPD_STACK_ID=self.name, LOOPD_PORT=str(self.port), LOOPD_BIND_ADDRESS="127.0.0.1")
        return env

    def compose(self, *args: str, timeout: float = 300) -> str:
        command = [
            *compose_command(),
            "--project-name",
            self.name,
            "--file",
            str(COMPOSE_FILE),
            "--project-directory",
            str(self.project_dir),
            "--env-file",
            str(self.project_dir / ".env"),
            *args,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}\n{done.stdout}"
            )
        return done.stdout

    def wait_ready(self, hands: int, timeout: float = 120) -> None:
        """Until /readyz answers ready and the gateway lists `hands` workers."""

        def ready() -> bool:
            try:
                with self.client() as api:
                    if api.get("/readyz").status_code != 200:
                        return False
                    listed = api.get("/v1/hands")
                    return listed.status_code == 200 and len(listed.json()["data"]) == hands
            except httpx.HTTPError:
                return False

        eventually_sync(ready, timeout=timeout, interval=0.5)

    def containers(self, service: str) -> list[Any]:
        """This project's running containers of one service."""
        with _engine() as engine:
            filters: Filters = {"label": [f"{PROJECT_LABEL}={self.name}", f"{SERVICE_LABEL}={service}"]}
            return list(engine.containers.list(filters=filters))

    def logs(self) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", "60", timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as error:
            return f"(no logs: {error})"

    def leftovers(self) -> list[str]:
        """What of this stack is still on the engine: containers, sandboxes, volumes, networks."""
        project: Filters = {"label": f"{PROJECT_LABEL}={self.name}"}
        with _engine() as engine:
            return [
                *(f"container {c.name}" for c in engine.containers.list(all=True, filters=project)),
                *(
                    f"sandbox {c.short_id}"
                    for c in engine.containers.list(all=True, filters={"label": f"{STACK_LABEL}={self.name}"})
                ),
                *(f"volume {v.name}" for v in engine.volumes.list(filters=project)),
                *(f"network {n.name}" for n in engine.networks.list(filters=project)),
            ]

    def down(self) -> None:
        """Remove the stack's containers, volumes and networks, then the sandboxes a killed worker left."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", timeout=600)
        with _engine() as engine:
            for sandbox in engine.containers.list(all=True, filters={"label": f"{STACK_LABEL}={self.name}"}):
                sandbox.remove(force=True, v=True)


@contextmanager
def _engine() -> Iterator[docker.DockerClient]:
    engine = docker.from_env()
    try:
        yield engine
    finally:
        engine.close()


def build_images(project_dir: Path, image: str) -> None:
    """Every image the stack runs, without a registry; `image` is loopd's own tag."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPD_")}
    env["LOOPD_IMAGE"] = image
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "offline.sh"), str(project_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"deploy/offline.sh failed ({done.returncode}):\n{done.stderr}\n{done.stdout}")


@contextmanager
def compose_stack(project_dir: Path) -> Iterator[ComposeStack]:
    """Build the images, bring the stack up and wait until it is ready; on exit, bring it down and
    remove everything it made but the images' layers, which later builds reuse."""
    name = f"loopd-e2e-{secrets.token_hex(4)}"
    stack = ComposeStack(name=name, project_dir=project_dir, port=free_port())
    subprocess.run(["bash", str(ROOT / "deploy" / "compose-env.sh"), str(project_dir)], check=True)
    # loopd's image is this test's own tag, built from this checkout: no other stack's build replaces it.
    build_images(project_dir, f"loopd:{name}")
    try:
        stack.compose("up", "--detach", "--no-build")
        stack.wait_ready(hands=1)
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        try:
            stack.down()
        finally:
            # --no-prune: the layers stay as the build cache of the next bring-up.
            subprocess.run(["docker", "rmi", "--no-prune", stack.image], capture_output=True, check=False)
