"""deploy/kubernetes/secrets.sh writes an overlay's secrets.env: random values where it may make them,
the operator's where only they know them, mode 0600, and the same file when run again."""

from __future__ import annotations

import stat
from pathlib import Path

from services.core.keys import looks_like_key
from tests.unit.kubernetes.manifests import PRODUCTION_ENV, copy_tree, run_secrets_script


def values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_dev_gets_random_passwords_and_urls_that_use_them(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    assert run_secrets_script(tree, "dev", {}).returncode == 0
    env_file = tree / "overlays" / "dev" / "secrets.env"
    first = values(env_file)

    assert run_secrets_script(tree, "dev", {"LOOPD_OPENAI_API_KEY": "sk-test"}).returncode == 0

    again = values(env_file)
    assert {k: v for k, v in again.items() if k != "LOOPD_OPENAI_API_KEY"} == first
    assert again["LOOPD_OPENAI_API_KEY"] == "sk-test"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert looks_like_key(first["LOOPD_ADMIN_KEY"]) and len(first["LOOPD_HANDS_SECRET"]) == 48
    assert f":{first['LOOPD_POSTGRES_PASSWORD']}@loopd-postgres:5432/" in first["LOOPD_DATABASE_URL"]
    assert first["LOOPD_BUS_URL"] == f"redis://:{first['LOOPD_REDIS_PASSWORD']}@loopd-redis:6379/0"


def test_production_needs_the_operators_urls(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    refused = run_secrets_script(tree, "production", {})
    written = run_secrets_script(tree, "production", PRODUCTION_ENV)

    assert refused.returncode == 1 and "set LOOPD_DATABASE_URL" in refused.stderr
    assert written.returncode == 0, written.stderr
    found = values(tree / "overlays" / "production" / "secrets.env")
    assert {k: found[k] for k in PRODUCTION_ENV} == PRODUCTION_ENV
    assert "LOOPD_POSTGRES_PASSWORD" not in found and "LOOPD_S3_ACCESS_KEY_ID" not in found


def test_an_unknown_overlay_is_refused(tmp_path: Path) -> None:
    refused = run_secrets_script(copy_tree(tmp_path), "staging", {})
    assert refused.returncode == 2 and "usage" in refused.stderr
