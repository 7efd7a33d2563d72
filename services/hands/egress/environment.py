"""What a networked sandbox is given: where its proxy is, the CA bundle it trusts, secrets' placeholders.

The files live in the sandbox's channel directory (mounted read-only at executor_client.MOUNT): the
egress socket hands listens on (gate.py) and the bundle of the system's CAs and the proxy's.
"""

from __future__ import annotations

from services.hands.contract.profile import NONE, NetworkPolicy
from services.hands.sandbox.executor_client import FORWARD_PORT, MOUNT

SOCKET_NAME = "egress.sock"
BUNDLE_NAME = "ca-bundle.pem"
# The variables tools read a CA bundle from, and those they find a proxy in.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
LOCAL = "localhost,127.0.0.1,::1"


def networked(policy: NetworkPolicy | None) -> bool:
    return policy is not None and (policy.mode or NONE) != NONE


def sandbox_environment(policy: NetworkPolicy) -> dict[str, str]:
    """The variables of a networked sandbox's processes; a secret only ever as its placeholder."""
    environment = dict.fromkeys(PROXY_VARIABLES, f"http://127.0.0.1:{FORWARD_PORT}")
    environment.update(NO_PROXY=LOCAL, no_proxy=LOCAL)
    environment.update(dict.fromkeys(CA_VARIABLES, f"{MOUNT}/{BUNDLE_NAME}"))
    for item in policy.inject:
        if item.env_name:
            environment[item.env_name] = item.placeholder
    return environment
