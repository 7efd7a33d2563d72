"""The NetworkPolicies of each overlay admit exactly loopd's own connections: the gateway's API from
anywhere, the hands' gRPC from brains only, PostgreSQL from the roles that use the event log, Redis
from the three roles, metrics from the monitoring namespace; nothing else reaches a pod."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.kubernetes.manifests import Rendered, component_of, pod_template
from tests.unit.kubernetes.policies import Peer, admits, selects

GATEWAY, GRPC, POSTGRES, REDIS = 8080, 50051, 5432, 6379
METRICS = {"gateway": 8080, "brain": 9101, "hands": 9102}
# Who may open each port, by the component label of the pod that connects.
ADMITTED = {
    ("hands", GRPC): {"brain"},
    ("postgres", POSTGRES): {"gateway", "brain", "migrate"},
    ("redis", REDIS): {"gateway", "brain", "hands"},
}


def pods(rendered: Rendered) -> dict[str, dict[str, str]]:
    """Each workload's pod labels, by component."""
    return {
        component_of(pod_template(w)): pod_template(w)["metadata"]["labels"] for w in rendered.workloads()
    }


def namespace(rendered: Rendered) -> str:
    return str(rendered.of_kind("Namespace")[0]["metadata"]["name"])


def peers(rendered: Rendered) -> dict[str, Peer]:
    """Every loopd pod, a stranger pod in the namespace, one elsewhere, Prometheus, and no pod at all."""
    ns = namespace(rendered)
    found = {component: Peer(ns, labels) for component, labels in pods(rendered).items()}
    found["stranger"] = Peer(ns, {"app": "stranger"})
    found["elsewhere"] = Peer(
        "default", {"app.kubernetes.io/name": "loopd", "app.kubernetes.io/component": "brain"}
    )
    found["prometheus"] = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
    found["outside"] = Peer("", None)
    return found


def test_every_pod_is_isolated_and_every_policy_selects_a_pod(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    for component, labels in pods(rendered).items():
        assert any(selects(p["spec"]["podSelector"], labels) for p in policies), component
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        assert any(selects(selector, labels) for labels in pods(rendered).values()), policy["metadata"][
            "name"
        ]


def test_only_the_admitted_roles_reach_hands_postgres_and_redis(rendered: Rendered) -> None:
    policies, targets = rendered.of_kind("NetworkPolicy"), pods(rendered)
    checked = 0
    for (target, port), admitted in ADMITTED.items():
        if target not in targets:
            continue  # production's stores are outside the cluster
        for name, source in peers(rendered).items():
            assert admits(policies, targets[target], port, source) == (name in admitted), (name, target, port)
        checked += 1
    assert checked == (3 if rendered.overlay == "dev" else 1)


def test_the_gateway_is_the_one_role_anything_may_reach(rendered: Rendered) -> None:
    policies, targets = rendered.of_kind("NetworkPolicy"), pods(rendered)
    outside = peers(rendered)["outside"]
    assert admits(policies, targets["gateway"], GATEWAY, outside)
    for component, labels in targets.items():
        ports = {GRPC, POSTGRES, REDIS, *METRICS.values(), 80, 443} - {GATEWAY}
        if component != "gateway":
            ports.add(GATEWAY)
        for port in ports:
            assert not admits(policies, labels, port, outside), (component, port)


def test_prometheus_reaches_each_role_on_its_metrics_port_only(rendered: Rendered) -> None:
    policies, targets = rendered.of_kind("NetworkPolicy"), pods(rendered)
    prometheus = peers(rendered)["prometheus"]
    for component, port in METRICS.items():
        assert admits(policies, targets[component], port, prometheus), component
        assert not admits(policies, targets[component], GRPC if component != "hands" else 9101, prometheus)


def test_the_policy_ports_are_the_ports_the_containers_serve(rendered: Rendered) -> None:
    served = {
        (component_of(pod_template(w)), port["containerPort"])
        for w in rendered.workloads()
        for c in pod_template(w)["spec"]["containers"]
        for port in c.get("ports", [])
    }
    for policy in rendered.of_kind("NetworkPolicy"):
        selected = [
            c for c, labels in pods(rendered).items() if selects(policy["spec"]["podSelector"], labels)
        ]
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                assert all((c, port["port"]) in served for c in selected), (policy["metadata"]["name"], port)


POLICY: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "a"},
    "spec": {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "app"}}}], "ports": [{"port": 5432}]},
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"team": "ops"}},
                        "podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]},
                    }
                ]
            },
        ],
    },
}


@pytest.mark.parametrize(
    ("source", "port", "expected"),
    [
        (Peer("a", {"role": "app"}), 5432, True),
        (Peer("a", {"role": "app"}), 5433, False),
        (Peer("b", {"role": "app"}), 5432, False),  # a bare podSelector is the policy's namespace only
        (Peer("b", {"role": "x"}, {"team": "ops"}), 1, True),  # both selectors of one peer must hold
        (Peer("b", {"other": "x"}, {"team": "ops"}), 1, False),
        (Peer("", None), 5432, False),
    ],
)
def test_the_evaluator_follows_the_api_rules(source: Peer, port: int, expected: bool) -> None:
    assert admits([POLICY], {"role": "db"}, port, source) is expected
    assert admits([POLICY], {"role": "unselected"}, port, source), "an unselected pod admits everything"
