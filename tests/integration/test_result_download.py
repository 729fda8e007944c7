"""download_result_image over real loopback HTTP: the stand-in's result URLs, and TLS pinned to a
vetted address while the certificate is still checked by name."""

from __future__ import annotations

import io
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from photo_restore.errors import InvalidProviderResult, ProviderUnavailable
from photo_restore.result_download import ResultDownloader
from photo_restore.result_image import decode_result
from photo_restore.siliconflow import SiliconFlowClient
from photo_restore_tools.local.siliconflow_standin import Behaviour, SiliconFlowStandIn
from tests.helpers.images import png
from tests.helpers.provenance import provenance
from tests.helpers.provider import data_uri, provider_request, static_resolver

PNG = png()
_resolver = static_resolver


def _generate(standin: SiliconFlowStandIn, size: tuple[int, int] = (40, 30)) -> str:
    with SiliconFlowClient(
        base_url=standin.base_url, api_key="k", connect_timeout=2, read_timeout=5, max_retries=0
    ) as client:
        return client.edit_image(provider_request(data_uri(size))).image_url


def downloader(
    *,
    allow_private_urls: bool = True,
    max_bytes: int = 10**6,
    timeout_seconds: float = 5,
    **kw: Any,
) -> ResultDownloader:
    return ResultDownloader(
        allow_private_urls=allow_private_urls,
        max_bytes=max_bytes,
        timeout_seconds=timeout_seconds,
        **kw,
    )


def test_allow_private_urls_lets_loopback_http_through(standin: SiliconFlowStandIn) -> None:
    data = downloader().download(_generate(standin))
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (1184, 896)  # near 1 MP


def test_one_downloader_serves_many_downloads(standin: SiliconFlowStandIn) -> None:
    """One client per container (building one costs ~40 ms of a small result's ~57 ms)."""
    shared = downloader()
    sizes = [len(shared.download(_generate(standin))) for _ in range(3)]
    assert all(sizes)
    shared.close()


def test_loopback_refused_without_allow_private(standin: SiliconFlowStandIn) -> None:
    url = _generate(standin)
    strict = downloader(allow_private_urls=False)
    with pytest.raises(InvalidProviderResult, match="scheme 'http'"):
        strict.download(url)
    with pytest.raises(InvalidProviderResult, match="non-public"):
        strict.download(url.replace("http://", "https://"))


def test_standin_non_image_result_refused_when_decoded(standin: SiliconFlowStandIn) -> None:
    standin.enqueue(Behaviour.not_an_image_result())
    data = downloader().download(_generate(standin))
    with pytest.raises(InvalidProviderResult, match="could not be decoded"):
        decode_result(data, max_pixels=10**6, jpeg_quality=90, provenance=provenance())


def test_streamed_cap_over_real_http(standin: SiliconFlowStandIn) -> None:
    with pytest.raises(InvalidProviderResult, match="limit"):
        downloader(max_bytes=100).download(_generate(standin, size=(200, 200)))


def test_expired_or_unknown_result_is_invalid(standin: SiliconFlowStandIn) -> None:
    with pytest.raises(InvalidProviderResult, match="404"):
        downloader().download(standin.root_url + "/results/nope.jpg")


# --- The deadline bounds the whole exchange --------------------------------------------------


@contextmanager
def dripping_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Sends a status line, then one header byte every 0.3 s for a minute: each read returns
    in time, so only a deadline on the whole exchange ends it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    def drip(connection: socket.socket) -> None:
        try:
            if tls is not None:
                connection = tls.wrap_socket(connection, server_side=True)
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for byte in (b"X-Slow: " + b"a" * 200)[:200]:
                if stop.wait(0.3):
                    break
                connection.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_slow_drip_of_headers_is_cut_off_at_the_deadline() -> None:
    with dripping_server() as port:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="Timeout"):
            downloader(timeout_seconds=2).download(f"http://127.0.0.1:{port}/r.png")
        elapsed = time.monotonic() - started
    # Not before the deadline, and long before the minute of drip: a margin of tens of
    # seconds, not a race with a loaded machine.
    assert 2 <= elapsed < 30, f"the 2 s deadline took {elapsed:.1f} s"


# --- Pinning keeps TLS honest: connect to the vetted IP, verify the certificate by name -------


def _tls_material(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a leaf certificate for `name`: (server context, client context)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            # Python 3.13 verifies strictly (VERIFY_X509_STRICT), as real CDN certificates pass.
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test-ca", "test-ca", ca_key, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = build(name, "test-ca", leaf_key, ca_key, ca=False)
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(
        cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server_ctx, client_ctx


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext, list[str]]]:
    """An https server on 127.0.0.1 whose certificate names only cdn.example."""
    server_ctx, client_ctx = _tls_material(tmp_path, "cdn.example")
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], client_ctx, hosts
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_pinned_connection_verifies_certificate_by_name(
    tls_server: tuple[int, ssl.SSLContext, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, client_ctx, hosts = tls_server
    # Loopback stands in for a public address here; everything else is the production path.
    monkeypatch.setattr("photo_restore.result_download._is_public", lambda _: True)
    resolve = _resolver({"cdn.example": ["127.0.0.1"], "evil.example": ["127.0.0.1"]})
    pinned = downloader(allow_private_urls=False, verify=client_ctx, resolve=resolve)
    assert pinned.download(f"https://cdn.example:{port}/r.png") == PNG
    assert hosts == [f"cdn.example:{port}"]
    with pytest.raises(ProviderUnavailable):
        # Same address, a name the certificate does not cover.
        pinned.download(f"https://evil.example:{port}/r.png")


def test_a_slow_drip_over_tls_is_cut_off_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_ctx, client_ctx = _tls_material(tmp_path, "cdn.example")
    monkeypatch.setattr("photo_restore.result_download._is_public", lambda _: True)
    resolve = _resolver({"cdn.example": ["127.0.0.1"]})
    pinned = downloader(
        allow_private_urls=False, timeout_seconds=2, verify=client_ctx, resolve=resolve
    )
    with dripping_server(tls=server_ctx) as port:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="Timeout"):
            pinned.download(f"https://cdn.example:{port}/r.png")
        elapsed = time.monotonic() - started
    # Not before the deadline, and long before the minute of drip: a margin of tens of
    # seconds, not a race with a loaded machine.
    assert 2 <= elapsed < 30, f"the 2 s deadline took {elapsed:.1f} s"
