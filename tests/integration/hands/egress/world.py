"""The world the egress tests reach: servers on loopback addresses, a DNS server naming them, a test CA.

Nothing here talks beyond 127.0.0.0/8: the HTTP and HTTPS servers listen on their own loopback
addresses, the DNS server (dns_server.py, in the egress venv) answers only for *.example.test, and
the operator's reachable networks in the tests list exactly the servers' addresses.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import io
import secrets
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
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


def wheel(name: str, version: str, source: str) -> tuple[str, bytes]:
    """A pure-Python wheel holding one module `name` with `source`: (its file name, its bytes)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},"
        f"{len(body)}"
        for path, body in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, body in files.items():
            archive.writestr(path, body)
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


def simple_index(wheels: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """The pages of a PEP 503 simple index serving `wheels` (file name, bytes), by path."""
    pages: dict[str, bytes] = {}
    for filename, body in wheels:
        project = filename.split("-", 1)[0].lower().replace("_", "-")
        digest = hashlib.sha256(body).hexdigest()
        pages[f"/files/{filename}"] = body
        pages[f"/simple/{project}/"] = (
            f'<!DOCTYPE html><html><body><a href="/files/{filename}#sha256={digest}">{filename}</a>'
            "</body></html>\n"
        ).encode()
    return pages


@contextmanager
def serving(
    address: str,
    tls: tuple[Path, Path] | None = None,
    pages: Mapping[str, bytes] | None = None,
    port: int = 0,
) -> Iterator[Server]:
    """An HTTP(S) server on `address`: it records each request and answers with its path, or with a
    page of `pages` by path (an index's folders as HTML, the rest as bytes); `/bytes/N` answers N bytes."""
    server_info = Server(address, 0)
    served: Mapping[str, bytes] = pages or {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            server_info.seen.append(Seen(headers.get("host", ""), self.path, headers))
            kind = "text/plain"
            if self.path in served:
                body = served[self.path]
                kind = "text/html" if self.path.endswith("/") else "application/octet-stream"
            elif self.path.startswith("/bytes/"):
                body = b"x" * int(self.path.rsplit("/", 1)[1])
            else:
                body = f"hello from {address} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((address, port), Handler)
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
def serving_on_port(
    port: int, tls: tuple[Path, Path] | None = None, pages: Mapping[str, bytes] | None = None
) -> Iterator[Server]:
    """`serving` on a given port (443 for a host an allowlist names without ports), at a random
    address of 127.0.0.0/8, so that servers of tests running side by side do not meet."""
    with ExitStack() as stack:
        for _ in range(20):
            address = (
                f"127.{100 + secrets.randbelow(150)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"
            )
            try:
                server = stack.enter_context(serving(address, tls, pages, port))
                break
            except OSError:  # that address's port is taken
                continue
        else:
            raise AssertionError(f"no loopback address had port {port} free")
        yield server


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
