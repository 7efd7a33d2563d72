"""Egress of real sandboxes through the worker's mitmproxy: allowlists by name, HTTPS, secrets at the edge.

The world is on loopback only: an HTTP server on 127.0.0.2, an HTTPS server on 127.0.0.3 with a
certificate of a test CA (the proxy verifies upstreams against it), and a DNS server naming them;
the operator lists exactly those two addresses as reachable. private.example.test resolves to
127.0.0.5, which nobody listed. The module runs once per runtime; the servers are the module's, and
each test sees only the requests made while it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from harness.waiting import eventually
from services.core.secret_box import SecretBox
from services.hands.contract.client import ExecuteResult, HandsClient
from services.hands.contract.profile import HostRule, NetworkPolicy, SandboxProfile, SecretInjection
from services.hands.server import HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, new_run, request, send
from tests.integration.hands.egress.world import Server, dns_server, make_certs, serving
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]

NAMES = {
    "plain.example.test": "127.0.0.2",
    "api.example.test": "127.0.0.3",
    "other.example.test": "127.0.0.3",
    "private.example.test": "127.0.0.5",
    # On the HTTPS server, whose certificate does not name it.
    "badcert.example.test": "127.0.0.3",
}
# Fetches each URL through the proxy the environment names, printing one JSON line per URL.
FETCH = r"""
import json, sys, urllib.error, urllib.request
headers = dict(h.split(": ", 1) for h in sys.argv[2:])
try:
    with urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "refused": e.headers.get("X-Loopd-Egress")}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""
# CONNECT to one host, then a TLS handshake naming another (SNI), then a request for the first, or
# (with a fifth argument) one whose request line names another host than its Host header.
SNI_SMUGGLE = r"""
import os, socket, ssl, sys
host, port, sni = sys.argv[1], sys.argv[2], sys.argv[3]
target = sys.argv[4] if len(sys.argv) > 4 else "/smuggled"
s = socket.create_connection(("127.0.0.1", int(os.environ["HTTPS_PROXY"].rsplit(":", 1)[1])), timeout=10)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
print(s.recv(4096).split(b"\r\n")[0].decode())
t = ssl.create_default_context().wrap_socket(s, server_hostname=sni)
t.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
reply = b""
while chunk := t.recv(65536):
    reply += chunk
print(reply.split(b"\r\n")[0].decode(), [l for l in reply.decode().split("\r\n") if "Egress" in l])
"""


# Lists the files readable in the sandbox that hold a text given in hex (so that the search's own
# command line does not hold it): every process's environment and command line, and the writable folders.
FIND = r"""
import glob, json, os, sys
needle = bytes.fromhex(sys.argv[1])
paths = glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline")
for top in ("/workspace", "/tmp", "/run/loopd"):
    paths += [os.path.join(d, f) for d, _, files in os.walk(top) for f in files]
found = []
for path in paths:
    try:
        with open(path, "rb") as f:
            if needle in f.read():
                found.append(path)
    except OSError:
        pass
print(json.dumps(sorted(p for p in found if "/self/" not in p)))
"""


def find(text: str) -> str:
    return f"python3 -c '{FIND}' {text.encode().hex()}"


@dataclass
class World:
    plain: Server
    secure: Server
    nameserver: str
    test_ca: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("egress-world")
    ca, cert, key = make_certs(folder, ["api.example.test", "other.example.test"])
    with (
        serving("127.0.0.2") as plain,
        serving("127.0.0.3", (cert, key)) as secure,
        dns_server(NAMES) as nameserver,
    ):
        yield World(plain, secure, nameserver, ca)


@pytest.fixture(autouse=True)
def fresh_requests(world: World) -> None:
    """The servers' logs start empty for each test: what a test asserts was received is its own,
    not an earlier test's (under the other runtime, say). Every request a test makes is answered
    before its call returns, so none arrives after the next test starts."""
    world.plain.seen.clear()
    world.secure.seen.clear()


@pytest.fixture
async def egress_worker(start_worker: Callable[..., Any], world: World) -> HandsWorker:
    worker: HandsWorker = await start_worker(
        egress_nameservers=[world.nameserver],
        egress_reachable_networks=["127.0.0.2/32", "127.0.0.3/32"],
        egress_upstream_ca=world.test_ca,
        hands_warm_pool=0,
    )
    return worker


@pytest.fixture
async def hands(egress_worker: HandsWorker) -> AsyncIterator[HandsClient]:
    async with HandsClient(egress_worker.address, secret=HANDS_SECRET) as client:
        yield client


def profile(world: World, **network: Any) -> SandboxProfile:
    allow = (
        HostRule("plain.example.test", (world.plain.port,)),
        HostRule("*.example.test", (world.secure.port,)),
        HostRule("private.example.test", (world.plain.port,)),
    )
    policy = NetworkPolicy(**{"mode": "allowlist", "allow": allow, **network})
    return SandboxProfile(environment_id="env-egress-test", environment_version=1, network=policy)


async def run(hands: HandsClient, run_id: str, command: str, profile: SandboxProfile | None) -> ExecuteResult:
    return await send(hands, replace(request(run_id, "bash", {"command": command}, 30.0), profile=profile))


def fetch(url: str, *headers: str) -> str:
    quoted = " ".join(f'"{h}"' for h in headers)
    return f"python3 -c '{FETCH}' '{url}' {quoted}"


def lines(result: ExecuteResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


async def test_allowed_hosts_are_reached_over_http_and_https(hands: HandsClient, world: World) -> None:
    plain_url = f"http://plain.example.test:{world.plain.port}/hello"
    secure_url = f"https://api.example.test:{world.secure.port}/hello"

    result = await run(hands, new_run(), f"{fetch(plain_url)}; {fetch(secure_url)}", profile(world))

    assert result.ok, result.output
    plain, secure = lines(result)
    assert plain == {"status": 200, "body": "hello from 127.0.0.2 /hello\n"}
    assert secure == {"status": 200, "body": "hello from 127.0.0.3 /hello\n"}
    allowed = {(d.host, d.port) for d in result.egress if d.allowed}
    assert allowed == {("plain.example.test", world.plain.port), ("api.example.test", world.secure.port)}
    assert all(d.bytes_sent > 0 and d.bytes_received > 0 for d in result.egress)
    assert not [d for d in result.egress if not d.allowed]


async def test_other_hosts_addresses_and_private_answers_are_refused(
    hands: HandsClient, world: World
) -> None:
    urls = [
        f"http://unlisted.example.org:{world.plain.port}/",
        f"http://127.0.0.2:{world.plain.port}/",
        f"http://private.example.test:{world.plain.port}/",
        # A port the allowlist gives another host only.
        f"https://api.example.test:{world.plain.port}/",
        f"https://nowhere.example.test:{world.secure.port}/",
        f"https://badcert.example.test:{world.secure.port}/",
    ]
    command = "; ".join(fetch(url) for url in urls)

    result = await run(hands, new_run(), command, profile(world))

    assert result.ok, result.output
    unlisted, literal, private, wrong_port, nowhere, badcert = lines(result)
    assert unlisted["refused"] == "not_allowed"
    assert literal["refused"] == "ip_literal"
    assert private["status"] == 502  # refused after resolving: the proxy answers for the server
    assert wrong_port["error"]  # CONNECT refused: the client sees a failed tunnel
    assert nowhere["status"] == 502
    assert badcert["status"] == 502
    reasons = [(d.host, d.reason) for d in result.egress]
    assert reasons == [
        ("unlisted.example.org", "not_allowed"),
        ("127.0.0.2", "ip_literal"),
        ("private.example.test", "private_address"),
        ("api.example.test", "not_allowed"),
        ("nowhere.example.test", "unresolvable"),
        ("badcert.example.test", "upstream_tls"),
    ]
    assert not any(d.allowed for d in result.egress)
    assert not [seen for seen in world.plain.seen if seen.path == "/"]


async def test_a_tls_name_other_than_the_tunnels_is_refused(hands: HandsClient, world: World) -> None:
    command = f"python3 -c '{SNI_SMUGGLE}' api.example.test {world.secure.port} other.example.test"
    before = len(world.secure.seen)

    result = await run(hands, new_run(), command, profile(world))

    assert result.ok, result.output
    assert "200 Connection established" in result.output
    assert "403" in result.output and "sni_mismatch" in result.output
    assert [(d.host, d.reason) for d in result.egress] == [("api.example.test", "sni_mismatch")]
    assert len(world.secure.seen) == before


async def test_a_request_in_a_tunnel_goes_to_the_tunnels_host_only(hands: HandsClient, world: World) -> None:
    # Both hosts are allowed; the secret of the tunnel's host must not follow the request elsewhere.
    elsewhere = f"https://other.example.test:{world.secure.port}/elsewhere"
    command = f"python3 -c '{SNI_SMUGGLE}' api.example.test {world.secure.port} api.example.test {elsewhere}"

    result = await run(hands, new_run(), command, profile(world))

    assert result.ok, result.output
    # It went down the tunnel (to api.example.test's connection), not to the host it named.
    assert [(d.host, d.allowed) for d in result.egress] == [("api.example.test", True)]
    assert [seen.host for seen in world.secure.seen if seen.path.endswith("/elsewhere")] == [
        f"api.example.test:{world.secure.port}"
    ]


async def test_secrets_are_put_on_requests_at_the_edge_only(
    hands: HandsClient, egress_worker: HandsWorker, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f"sk-test-{secrets.token_hex(16)}"
    box = SecretBox.from_settings(egress_worker._settings)
    placeholder = "loopd-placeholder-api-token"
    inject = SecretInjection(
        secret_name="api-token",
        host="api.example.test",
        header="Authorization",
        value_template="Bearer {secret}",
        sealed_value=box.seal(secret),
        placeholder=placeholder,
        env_name="API_TOKEN",
    )
    with_secret = profile(world, inject=(inject,))
    secure_url = f"https://api.example.test:{world.secure.port}/with-secret"
    plain_url = f"http://plain.example.test:{world.plain.port}/leak"
    other_url = f"https://other.example.test:{world.secure.port}/leak"
    run_id = new_run()
    command = (
        f"{fetch(secure_url, 'Authorization: Bearer $API_TOKEN')}; "
        f"{fetch(plain_url, 'Authorization: Bearer $API_TOKEN')}; "
        f"{fetch(other_url, 'Authorization: Bearer $API_TOKEN')}; "
        'echo "$API_TOKEN" > /workspace/token.txt'
    )

    result = await run(hands, run_id, command, with_secret)

    assert result.ok, result.output
    assert [line["status"] for line in lines(result)] == [200, 200, 200]

    def received(server: Server, path: str) -> list[str | None]:
        return [seen.headers.get("authorization") for seen in server.seen if seen.path == path]

    assert received(world.secure, "/with-secret") == [f"Bearer {secret}"]
    # The placeholder stays a placeholder everywhere else, even on another host of the same server.
    assert received(world.plain, "/leak") == [f"Bearer {placeholder}"]
    assert received(world.secure, "/leak") == [f"Bearer {placeholder}"]
    # What the sandbox can read anywhere holds the placeholder, never the secret.
    search = await run(hands, run_id, f"printenv API_TOKEN; {find(secret)}; {find(placeholder)}", with_secret)
    found_secret, found_placeholder = json.loads(search.output.splitlines()[1]), search.output.splitlines()[2]
    assert search.output.splitlines()[0] == placeholder
    assert found_secret == []
    assert "/workspace/token.txt" in json.loads(found_placeholder)
    assert secret not in repr(result) + repr(search)
    assert secret not in caplog.text


async def test_a_sandbox_without_a_network_has_no_way_out(hands: HandsClient, world: World) -> None:
    probe = (
        "import os, socket; print(sorted(k for k in os.environ if 'PROXY' in k.upper()));"
        "print(sorted(os.listdir('/run/loopd')));"
        "s = socket.socket(); s.settimeout(2);"
        "print(s.connect_ex(('127.0.0.1', 3128)));"
        f"print(s.connect_ex(('127.0.0.2', {world.plain.port})))"
    )
    closed = profile(world, mode="none")

    result = await run(hands, new_run(), f'python3 -c "{probe}"', closed)

    assert result.ok, result.output
    env, files, proxy_port, host = result.output.splitlines()
    assert env == "[]"
    assert files == "['exec.sock']"
    assert proxy_port == "111"  # ECONNREFUSED: nothing listens in the sandbox's own loopback
    assert host != "0"
    assert result.egress == ()


async def test_past_the_byte_budget_connections_are_cut(hands: HandsClient, world: World) -> None:
    big = f"http://plain.example.test:{world.plain.port}/bytes/200000"
    small = f"http://plain.example.test:{world.plain.port}/small"
    budgeted = profile(world, byte_budget=20_000)

    result = await run(hands, new_run(), f"{fetch(big)}; {fetch(small)}", budgeted)

    assert result.ok, result.output
    first, second = lines(result)
    assert "error" in first
    assert "error" in second
    reasons = [d.reason for d in result.egress]
    assert reasons == ["", "budget_exhausted", "budget_exhausted"], result.egress
    moved = result.egress[0].bytes_sent + result.egress[0].bytes_received
    assert moved == 20_000


async def test_the_proxy_is_started_again_when_it_dies_and_stops_with_its_worker(
    hands: HandsClient, egress_worker: HandsWorker, world: World
) -> None:
    run_id, url = new_run(), f"http://plain.example.test:{world.plain.port}/again"
    first = await run(hands, run_id, fetch(url), profile(world))
    assert lines(first)[0]["status"] == 200, first.output
    egress = egress_worker.egress
    assert egress is not None
    pid = egress.proxy_pid
    assert pid is not None

    async def dead() -> bool:
        return egress.proxy_pid is None

    os.kill(pid, signal.SIGKILL)
    await eventually(dead)
    again = await run(hands, run_id, fetch(url), profile(world))

    assert not again.sandbox_created
    assert lines(again)[0]["status"] == 200, again.output
    restarted = egress.proxy_pid
    assert restarted is not None and restarted != pid
    await egress_worker.__aexit__(None, None, None)
    assert egress.proxy_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(restarted, 0)


async def test_a_local_process_dialling_the_proxy_gets_nothing_through(
    hands: HandsClient, egress_worker: HandsWorker, world: World
) -> None:
    url = f"http://plain.example.test:{world.plain.port}/from-the-host"
    first = await run(hands, new_run(), fetch(url), profile(world))
    assert lines(first)[0]["status"] == 200, first.output
    assert egress_worker.egress is not None and egress_worker.egress.proxy_port is not None

    reader, writer = await asyncio.open_connection("127.0.0.1", egress_worker.egress.proxy_port)
    host = f"plain.example.test:{world.plain.port}"
    writer.write(f"GET http://{host}/bypass HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    reply = await reader.read()
    writer.close()

    assert reply.startswith(b"HTTP/1.1 403"), reply
    assert not [seen for seen in world.plain.seen if seen.path == "/bypass"]


async def test_open_reaches_any_public_name_but_still_no_address_or_private_answer(
    hands: HandsClient, world: World
) -> None:
    urls = [
        f"https://other.example.test:{world.secure.port}/open",
        f"http://127.0.0.3:{world.secure.port}/",
        f"http://private.example.test:{world.plain.port}/",
    ]

    result = await run(hands, new_run(), "; ".join(fetch(u) for u in urls), profile(world, mode="open"))

    reached, literal, private = lines(result)
    assert reached == {"status": 200, "body": "hello from 127.0.0.3 /open\n"}
    assert literal["refused"] == "ip_literal"
    assert private["status"] == 502
    # An allowed connection's decision comes when it closes, which may be after the next refusal.
    assert sorted((d.host, d.allowed, d.reason) for d in result.egress) == [
        ("127.0.0.3", False, "ip_literal"),
        ("other.example.test", True, ""),
        ("private.example.test", False, "private_address"),
    ]


async def test_the_way_out_survives_a_killed_call_and_carries_many_connections_at_once(
    hands: HandsClient, world: World
) -> None:
    run_id, shaped = new_run(), profile(world)
    timed_out = await send(
        hands, replace(request(run_id, "bash", {"command": "sleep 60"}, 2.0), profile=shaped)
    )
    assert timed_out.error == "timeout"
    url = f"http://plain.example.test:{world.plain.port}/many"

    many = await run(hands, run_id, " & ".join([fetch(url)] * 20) + " & wait", shaped)

    assert not many.sandbox_created
    assert [line.get("status") for line in lines(many)] == [200] * 20, many.output
    assert len([d for d in many.egress if d.allowed]) == 20
