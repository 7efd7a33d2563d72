"""deploy/sandbox/build.sh keeps the image built for the sandbox user, against a stand-in `docker` CLI
that records what it is asked and answers `image inspect` as a given image would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "sandbox" / "build.sh"
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >> "$DOCKER_CALLS"
if [[ "$1 $2" == "image inspect" ]]; then
  [[ "$IMAGE_LABEL" != missing ]] || exit 1
  if [[ "$3" == -f ]]; then echo "$IMAGE_LABEL"; fi
  exit 0
fi
if [[ "$1" == create ]]; then echo c0ffee; fi
"""


def build(tmp_path: Path, label: str, *args: str, user: str | None = None) -> tuple[int, list[str]]:
    """Run build.sh with an image labelled `label` ("" unlabelled, "missing" absent); its docker calls."""
    (tmp_path / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "DOCKER_CALLS": str(calls),
        "IMAGE_LABEL": label,
        "LOOPD_SANDBOX_IMAGE": "loopd-sandbox:test",
    }
    if user is not None:
        env["LOOPD_SANDBOX_USER"] = user
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30)
    return done.returncode, calls.read_text().splitlines()


def test_an_image_built_for_the_sandbox_user_is_kept(tmp_path: Path) -> None:
    code, calls = build(tmp_path, "64000:64000")
    checked, _ = build(tmp_path, "64000:64000", "--check")

    assert code == 0 and checked == 0
    assert not any(call.startswith(("create", "commit")) for call in calls)


@pytest.mark.parametrize("label", ["", "1000:1000"])
def test_an_image_built_for_another_user_is_re_owned_without_a_download(tmp_path: Path, label: str) -> None:
    checked, _ = build(tmp_path, label, "--check")
    code, calls = build(tmp_path, label)

    assert checked == 1
    assert code == 0
    create = next(call for call in calls if call.startswith("create"))
    assert "--network none" in create and "usermod --uid 64000 --gid 64000 agent" in create
    commit = next(call for call in calls if call.startswith("commit"))
    assert "LABEL org.loopd.sandbox.user=64000:64000" in commit and "USER 64000:64000" in commit
    assert commit.endswith("c0ffee loopd-sandbox:test")
    assert calls[-1] == "rm -f c0ffee"


def test_the_user_comes_from_the_same_setting_as_the_hands(tmp_path: Path) -> None:
    code, calls = build(tmp_path, "64000:64000", user="70000:70001")

    assert code == 0
    assert any("usermod --uid 70000 --gid 70001 agent" in call for call in calls)


@pytest.mark.parametrize("user", ["0:0", "root", "1000", "64000:"])
def test_a_sandbox_user_that_is_root_or_not_numeric_is_refused(tmp_path: Path, user: str) -> None:
    code, calls = build(tmp_path, "64000:64000", user=user)

    assert code == 2 and calls == []


def test_a_missing_image_fails_the_check(tmp_path: Path) -> None:
    code, _ = build(tmp_path, "missing", "--check")

    assert code == 1
