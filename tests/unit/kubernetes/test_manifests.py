"""Every overlay of deploy/kubernetes renders, is valid for the Kubernetes versions loopd supports
(strict schemas, shipped inside kubernetes-validate: no network), and keeps loopd's invariants: the
roles' probes, settings that parse and agree with the ports and paths the manifests use, every Secret,
key and ConfigMap a pod names exists, and the hands' grace period is their stop setting."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.core import metrics
from services.core.settings import Settings
from services.hands.server import CLEANUP_SECONDS
from tests.unit.kubernetes.manifests import KUBERNETES, Rendered, loopd_containers, pod_template

# The oldest Kubernetes release loopd supports, and the newest the pinned validator knows.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
FIELD_VALUES = {"metadata.name": "loopd-pod-0", "status.podIP": "10.1.2.3"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_the_supported_kubernetes_versions(
    rendered: Rendered, version: str
) -> None:
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_refuses_a_misspelled_field(rendered: Rendered) -> None:
    deployment = copy.deepcopy(rendered.workload("gateway"))
    pod_template(deployment)["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_roles_report_their_health(rendered: Rendered) -> None:
    gateway = rendered.container("gateway")
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    hands = rendered.container("hands")
    assert hands["readinessProbe"]["grpc"]["port"] == port_of(hands, "grpc")
    assert hands["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert rendered.container("brain")["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_every_secret_key_and_config_map_a_pod_names_exists(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        spec = pod_template(workload)["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    rendered.named("ConfigMap", source["configMapRef"]["name"])
                if "secretRef" in source:
                    rendered.named("Secret", source["secretRef"]["name"])
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None and not ref.get("optional"):
                    assert ref["key"] in rendered.secret(ref["name"]), (container["name"], ref)
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                rendered.named("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


def test_the_hands_grace_period_is_their_stop_setting(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(rendered, rendered.container("hands"), monkeypatch)
    grace = pod_template(rendered.workload("hands"))["spec"]["terminationGracePeriodSeconds"]
    assert grace == settings.hands_stop_seconds > CLEANUP_SECONDS


def test_every_loopd_variable_is_a_setting(rendered: Rendered) -> None:
    names = set(rendered.config())
    for _, container in loopd_containers(rendered):
        names |= {variable["name"] for variable in container.get("env", [])}
    unknown = {name for name in names if name.removeprefix("LOOPD_").lower() not in Settings.model_fields}
    assert not unknown and all(name.startswith("LOOPD_") for name in names), unknown


def test_the_settings_agree_with_the_ports_and_paths_of_the_manifests(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = settings_of(rendered, rendered.container("gateway"), monkeypatch)
    assert (gateway.host, gateway.port) == ("0.0.0.0", port_of(rendered.container("gateway"), "http"))
    assert gateway.admin_key is not None and not gateway.migrate_on_start

    brain = settings_of(rendered, rendered.container("brain"), monkeypatch)
    assert brain.metrics_host == "0.0.0.0" and brain.hands_secret is not None
    assert (
        brain.brain_metrics_port
        == port_of(rendered.container("brain"), "metrics")
        == scraped(rendered, "brain")
    )

    hands_container = rendered.container("hands")
    hands = settings_of(rendered, hands_container, monkeypatch)
    assert hands.hands_metrics_port == port_of(hands_container, "metrics") == scraped(rendered, "hands")
    assert hands.hands_listen == f"0.0.0.0:{port_of(hands_container, 'grpc')}"
    assert hands.hands_secret == brain.hands_secret and hands.bus_url == brain.bus_url == gateway.bus_url
    runtime = volume_of(rendered, "hands", hands_container, str(hands.sandbox_runtime_dir))
    # The engine resolves the sandboxes' bind mounts on the node: the same path on both sides.
    assert runtime["hostPath"]["path"] == str(hands.sandbox_runtime_dir)
    docker = hands.sandbox_docker_host.removeprefix("unix://")
    assert volume_of(rendered, "hands", hands_container, docker)["hostPath"] == {
        "path": docker,
        "type": "Socket",
    }

    # Roles share the artifacts: one bucket, or one volume at the same path.
    if rendered.overlay == "production":
        assert "LOOPD_ARTIFACTS_URL" in rendered.config()
    else:
        for component in ("gateway", "brain", "hands"):
            path = str(settings_of(rendered, rendered.container(component), monkeypatch).artifacts_dir)
            claim = volume_of(rendered, component, rendered.container(component), path)
            assert claim["persistentVolumeClaim"]["claimName"] == "loopd-artifacts"


def test_the_schema_is_migrated_once_and_the_roles_wait_for_it(rendered: Rendered) -> None:
    migrate = rendered.workload("migrate")
    assert migrate["kind"] == "Job"
    assert pod_template(migrate)["spec"]["containers"][0]["command"] == ["loopd-server", "migrate"]
    assert rendered.config()["LOOPD_MIGRATE_ON_START"] == "false"
    for component in ("gateway", "brain"):
        [init] = pod_template(rendered.workload(component))["spec"]["initContainers"]
        assert init["command"] == ["loopd-server", "wait-for-schema"]


def test_no_pod_gets_service_links_or_an_api_token(rendered: Rendered) -> None:
    # Kubernetes names Service links after the Service (LOOPD_GATEWAY_PORT=tcp://...), and settings
    # would read such names; no loopd role talks to the Kubernetes API.
    for workload in rendered.workloads():
        spec = pod_template(workload)["spec"]
        assert spec["enableServiceLinks"] is False and spec["automountServiceAccountToken"] is False


def test_only_the_gateway_serves_a_service_and_nothing_uses_the_node_network(rendered: Rendered) -> None:
    roles = {s["spec"]["selector"]["app.kubernetes.io/component"] for s in rendered.of_kind("Service")}
    assert roles == ({"gateway", "postgres", "redis"} if rendered.overlay == "dev" else {"gateway"})
    assert all(s["spec"]["type"] == "ClusterIP" for s in rendered.of_kind("Service"))
    for workload in rendered.workloads():
        spec = pod_template(workload)["spec"]
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        assert all("hostPort" not in p for c in spec["containers"] for p in c.get("ports", []))


def test_the_hands_autoscaler_reads_the_load_hands_export(rendered: Rendered) -> None:
    autoscaler = rendered.named("HorizontalPodAutoscaler", "loopd-hands")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "loopd-hands",
    }
    assert "replicas" not in rendered.workload("hands")["spec"], "the autoscaler owns the replicas"
    [metric] = autoscaler["spec"]["metrics"]
    [rule] = yaml.safe_load((KUBERNETES / "autoscaling" / "prometheus-adapter.yaml").read_text())["rules"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"]
    exported = {gauge._name for gauge in (metrics.SLOTS_BUSY, metrics.CALLS_WAITING, metrics.SLOTS_TOTAL)}
    queried = set(re.findall(r"loopd_[a-z_]+", rule["metricsQuery"]))
    assert queried == exported
    assert 0 < autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]


def settings_of(rendered: Rendered, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the container's process would parse from the environment its pod gives it."""
    for name in [n for n in os.environ if n.startswith("LOOPD_")]:
        monkeypatch.delenv(name)
    for name, value in environment(rendered, container):
        monkeypatch.setenv(name, value)
    return Settings()


def environment(rendered: Rendered, container: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for source in container.get("envFrom", []):
        yield from rendered.named("ConfigMap", source["configMapRef"]["name"])["data"].items()
    for variable in container.get("env", []):
        if "value" in variable:
            yield variable["name"], variable["value"]
            continue
        source = variable["valueFrom"]
        if "fieldRef" in source:
            yield variable["name"], FIELD_VALUES[source["fieldRef"]["fieldPath"]]
        elif (ref := source["secretKeyRef"])["key"] in rendered.secret(ref["name"]):
            yield variable["name"], rendered.secret(ref["name"])[ref["key"]]


def port_of(container: dict[str, Any], name: str) -> int:
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == name))


def scraped(rendered: Rendered, component: str) -> int:
    return int(pod_template(rendered.workload(component))["metadata"]["annotations"]["prometheus.io/port"])


def volume_of(rendered: Rendered, component: str, container: dict[str, Any], path: str) -> dict[str, Any]:
    """The pod's volume mounted at `path` in the container."""
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    volumes = pod_template(rendered.workload(component))["spec"]["volumes"]
    return dict(next(v for v in volumes if v["name"] == mount["name"]))
