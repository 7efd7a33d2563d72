"""deploy/offline.sh builds every compose image from the one base and names them in the project's
.env, against a stand-in `docker` CLI that records what it is asked and has the base and the sandbox
image already (building those is deploy/base/build.sh's and deploy/sandbox/build.sh's job)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "offline.sh"
PACKAGES = re.search(r"^PACKAGES=(\S+)$", (ROOT / "deploy/base/build.sh").read_text(), re.M)
FAKE_DOCKER = f"""#!/usr/bin/env bash
echo "$*" >> "$DOCKER_CALLS"
if [[ "$1 $2" == "image inspect" ]]; then
  if [[ "$*" == *org.loopd.base.packages* ]]; then echo "{PACKAGES.group(1) if PACKAGES else ""}"; fi
  if [[ "$*" == *org.loopd.sandbox.user* ]]; then echo 64000:64000; fi
fi
"""


def offline(tmp_path: Path, project: Path, **settings: str) -> tuple[int, list[str], str]:
    """Run offline.sh for `project`: its exit code, the docker calls, and what it printed."""
    (tmp_path / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("LOOPD_")},
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "DOCKER_CALLS": str(calls),
        **settings,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), str(project)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, calls.read_text().splitlines(), done.stdout + done.stderr


def test_the_stores_and_loopd_are_built_on_the_base_and_the_base_is_not_bootstrapped_again(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()

    code, calls, printed = offline(tmp_path, project, LOOPD_IMAGE="loopd:test")

    assert code == 0, printed
    builds = [call for call in calls if call.startswith("build ")]
    assert len(builds) == 3
    assert all("--build-arg BASE=loopd-base:bookworm" in build for build in builds)
    assert builds[0].endswith(f"--tag loopd-postgres:bookworm {ROOT}/deploy/postgres")
    assert builds[1].endswith(f"--tag loopd-redis:bookworm {ROOT}/deploy/redis")
    assert builds[2].endswith(f"--tag loopd:test --file {ROOT}/deploy/Dockerfile {ROOT}")
    assert not any(call.startswith(("import", "create", "commit")) for call in calls)


def test_the_images_are_named_in_env_beside_the_secrets_once_each(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env_file = project / ".env"
    env_file.write_text("LOOPD_POSTGRES_PASSWORD=kept\nLOOPD_IMAGE=loopd:old\n")
    env_file.chmod(0o600)

    first, _, _ = offline(tmp_path, project)
    again, _, printed = offline(tmp_path, project, LOOPD_REDIS_IMAGE="redis-of-ours:1")

    assert first == again == 0, printed
    lines = env_file.read_text().splitlines()
    assert lines == [
        "LOOPD_POSTGRES_PASSWORD=kept",
        "LOOPD_IMAGE=loopd:latest",
        "LOOPD_BASE_IMAGE=loopd-base:bookworm",
        "LOOPD_POSTGRES_IMAGE=loopd-postgres:bookworm",
        "LOOPD_REDIS_IMAGE=redis-of-ours:1",
        "LOOPD_SANDBOX_IMAGE=loopd-sandbox:latest",
    ]
    # It holds compose-env.sh's secrets: only its owner may read it.
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
