"""The world the egress tests reach: servers on loopback addresses, a DNS server naming them, a test CA.

Nothing here talks beyond 127.0.0.0/8: the HTTP and HTTPS servers listen on their own loopback
addresses, the DNS server (dns_server.py, in the egress venv) answers only for *.example.test, and
the operator's reachable networks in the tests list exactly the servers' addresses.
"""

from __future__ import annotations

import datetime
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.hands.egress.supervisor import default_python

HERE = Path(__file__).resolve().parent


@dataclass
class Seen:
    """One request a test server received."""

    host: str
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    address: str
    port: int
    seen: list[Seen] = field(default_factory=list)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_certs(folder: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signs for `names`: (ca.pem, server cert, server key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "test-ca.pem", folder / "server.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    return paths


@contextmanager
def serving(address: str, tls: tuple[Path, Path] | None = None) -> Iterator[Server]:
    """An HTTP(S) server on `address`: it records each request and answers with its path; `/bytes/N`
    answers N bytes."""
    server_info = Server(address, 0)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            server_info.seen.append(Seen(headers.get("host", ""), self.path, headers))
            if self.path.startswith("/bytes/"):
                body = b"x" * int(self.path.rsplit("/", 1)[1])
            else:
                body = f"hello from {address} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((address, 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server_info.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def dns_server(names: dict[str, str]) -> Iterator[str]:
    """A DNS server on 127.0.0.1 answering for `names`; yields its "address:port"."""
    process = subprocess.Popen(
        [str(default_python()), str(HERE / "dns_server.py"), "127.0.0.1", "0"]
        + [f"{name}={ip}" for name, ip in names.items()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line and line[0] == "ready", line
        yield f"127.0.0.1:{line[1]}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
