"""Which connections the NetworkPolicies of one namespace admit, by the rules of the Kubernetes API
(ingress only, which is all loopd's policies restrict): a pod selected by no policy admits everything;
a selected pod admits what one of its policies' ingress rules matches, by source and port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE_NAME = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Peer:
    """Where a connection comes from: a pod (with its labels) in a namespace, or no pod at all."""

    namespace: str
    labels: dict[str, str] | None = None  # None: not a pod (a load balancer, a node, outside)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def in_namespace_labels(self) -> dict[str, str]:
        return {NAMESPACE_NAME: self.namespace, **self.namespace_labels}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector's verdict; the empty selector selects everything."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        verdict = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not verdict:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], source: Peer, namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        return source.labels is None
    pods, namespaces = rule_peer.get("podSelector"), rule_peer.get("namespaceSelector")
    if namespaces is None and source.namespace != namespace:
        return False  # a bare podSelector means pods of the policy's own namespace
    if namespaces is not None and not selects(namespaces, source.in_namespace_labels()):
        return False
    return pods is None or (source.labels is not None and selects(pods, source.labels))


def _rule_admits(rule: dict[str, Any], source: Peer, port: int, namespace: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
        return False
    peers = rule.get("from")
    return not peers or any(_peer_matches(peer, source, namespace) for peer in peers)


def admits(policies: list[dict[str, Any]], target: dict[str, str], port: int, source: Peer) -> bool:
    """Whether a TCP connection from `source` to `port` of a pod labelled `target` gets through."""
    selecting = [
        p
        for p in policies
        if selects(p["spec"]["podSelector"], target)
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    namespace = selecting[0]["metadata"]["namespace"]
    return any(
        _rule_admits(rule, source, port, namespace)
        for p in selecting
        for rule in p["spec"].get("ingress", [])
    )
