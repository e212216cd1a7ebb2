"""Image downloads by URL (service/api/url_images.py) against real sockets: an HTTP server on
127.0.0.1 (the loopback server), refusals before any connection, redirects, size and time
limits, and TLS verified for the URL's host while connecting to the checked address."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from service.api import url_images
from service.api.url_images import UrlImageError, UrlPolicy, fetch_image

IMAGE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
LIMIT = 4096
LOOPBACK = UrlPolicy(allow=("127.0.0.1/32",), max_bytes=LIMIT)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/image":
            self.answer(200, IMAGE)
        elif parts.path == "/host":
            self.answer(200, self.headers["Host"].encode())
        elif parts.path == "/redirect":
            self.answer(302, b"", Location=query["to"])
        elif parts.path == "/loop":
            self.answer(302, b"", Location="/loop")
        elif parts.path == "/big":
            self.answer(200, b"x" * (LIMIT + 1))
        elif parts.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(int(query["chunks"])):
                self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif parts.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            self.answer(404, b"not found")

    def answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def base() -> str:
    """The loopback server's root URL."""
    server = serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_connections(monkeypatch):
    """Fails the test if fetch_image opens a socket: the refusal must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)


def resolving(monkeypatch, names: dict[str, str]) -> list[str]:
    """getaddrinfo answering ``names`` (name -> IPv4 address) itself and other names as
    before; returns the names looked up."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_url_images_are_off_without_an_allow_list(base):
    with pytest.raises(UrlImageError, match="not enabled"):
        fetch_image(f"{base}/image", UrlPolicy(allow=(), max_bytes=LIMIT))


def test_an_allowed_loopback_image_comes_back_exactly(base):
    assert fetch_image(f"{base}/image", LOOPBACK) == IMAGE


class Http10Handler(Handler):
    """An HTTP/1.0 server sending its headers, then, a moment later, 64 KiB of body."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(IMAGE) * 64))
        self.end_headers()
        self.wfile.flush()
        time.sleep(0.05)
        self.wfile.write(IMAGE * 64)


def test_an_http_1_0_server_s_answer_is_read_to_its_end():
    """Regression: http.client closes the connection on "Connection: close" (every HTTP/1.0
    answer) before the body is read; the body must still come back whole."""
    server = serve(ThreadingHTTPServer(("127.0.0.1", 0), Http10Handler))
    try:
        policy = UrlPolicy(allow=("127.0.0.1/32",), max_bytes=len(IMAGE) * 64)
        assert fetch_image(f"http://127.0.0.1:{server.server_port}/image", policy) == IMAGE * 64
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "gopher://127.0.0.1:70/_x", "//127.0.0.1/"])
def test_only_http_and_https_are_fetched(url, no_connections):
    with pytest.raises(UrlImageError, match="scheme"):
        fetch_image(url, UrlPolicy(allow=("*", "127.0.0.0/8"), max_bytes=LIMIT))


@pytest.mark.parametrize("allow", [("*",), ("localhost",), ("127.0.0.2/32", "::2/128")])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_needs_a_network_entry_that_covers_it(base, host, allow, no_connections):
    url = base.replace("127.0.0.1", host) + "/image"
    with pytest.raises(UrlImageError, match="not allowed|not public"):
        fetch_image(url, UrlPolicy(allow=allow, max_bytes=LIMIT))


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://0.0.0.0/",
                                 "http://10.1.2.3/", "http://[::ffff:169.254.169.254]/", "http://[2002:a9fe:a9fe::]/"])
def test_private_and_link_local_addresses_are_refused_before_connecting(url, no_connections):
    with pytest.raises(UrlImageError, match="not public"):
        fetch_image(url, UrlPolicy(allow=("*",), max_bytes=LIMIT))


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1", "017700000001"])
def test_integer_and_short_ipv4_forms_are_refused(base, host, no_connections):
    url = base.replace("127.0.0.1", host) + "/image"
    with pytest.raises(UrlImageError, match="usual form"):
        fetch_image(url, UrlPolicy(allow=("*", "127.0.0.0/8"), max_bytes=LIMIT))


def test_credentials_in_the_url_are_refused(base, no_connections):
    with pytest.raises(UrlImageError, match="credentials"):
        fetch_image(base.replace("//", "//user:pw@") + "/image", LOOPBACK)
    with pytest.raises(UrlImageError, match="credentials"):
        fetch_image(base.replace("//", "//images.example.com@") + "/image", LOOPBACK)


def test_name_entries_match_exactly_or_as_subdomains(monkeypatch):
    resolving(monkeypatch, {name: "93.184.215.14" for name in ("images.example.com", "a.cdn.example.org")})
    opened: list = []

    def record(family, kind):
        opened.append(family)
        raise ConnectionRefusedError("test: no connection")

    monkeypatch.setattr(socket, "socket", record)
    policy = UrlPolicy(allow=("Images.Example.com", "*.cdn.example.org"), max_bytes=LIMIT)
    for url in ("http://images.example.com/a.jpg", "http://IMAGES.example.com./a.jpg", "https://a.cdn.example.org/"):
        with pytest.raises(UrlImageError, match="Connection"):
            fetch_image(url, policy)
    for url in ("http://example.com/", "http://x.images.example.com/", "http://cdn.example.org/", "http://evilcdn.example.org/"):
        with pytest.raises(UrlImageError, match="not allowed"):
            fetch_image(url, policy)
    assert len(opened) == 3


def test_the_host_is_resolved_once_and_the_checked_address_is_connected_to(base, monkeypatch):
    lookups = resolving(monkeypatch, {"images.test": "127.0.0.1"})
    port = urlsplit(base).port
    assert fetch_image(f"http://images.test:{port}/host", LOOPBACK) == f"images.test:{port}".encode()
    assert lookups == ["images.test"]


def test_redirects_are_followed_and_each_hop_is_checked(base):
    assert fetch_image(f"{base}/redirect?to=/image", LOOPBACK) == IMAGE
    assert fetch_image(f"{base}/redirect?to={base}/redirect?to=/image", LOOPBACK) == IMAGE
    port = urlsplit(base).port
    for target in (f"http://127.0.0.2:{port}/image", f"http://[::1]:{port}/image", "http://169.254.169.254/"):
        with pytest.raises(UrlImageError, match="not public"):
            fetch_image(f"{base}/redirect?to={target}", LOOPBACK)
    with pytest.raises(UrlImageError, match="scheme"):
        fetch_image(f"{base}/redirect?to=file:///etc/passwd", LOOPBACK)


def test_too_many_redirects_are_refused(base):
    with pytest.raises(UrlImageError, match="more than 3 redirects"):
        fetch_image(f"{base}/loop", LOOPBACK)
    with pytest.raises(UrlImageError, match="more than 0 redirects"):
        fetch_image(f"{base}/redirect?to=/image", UrlPolicy(allow=LOOPBACK.allow, max_bytes=LIMIT, max_redirects=0))


def test_an_answer_other_than_200_is_refused(base):
    with pytest.raises(UrlImageError, match="404"):
        fetch_image(f"{base}/missing", LOOPBACK)


def test_an_image_over_the_limit_is_refused_with_or_without_a_length(base):
    with pytest.raises(UrlImageError, match="over the limit"):
        fetch_image(f"{base}/big", LOOPBACK)
    with pytest.raises(UrlImageError, match="over the limit"):
        fetch_image(f"{base}/chunked?chunks={LIMIT // 1024 + 1}", LOOPBACK)
    assert fetch_image(f"{base}/chunked?chunks={LIMIT // 1024}", LOOPBACK) == b"x" * LIMIT


def test_a_trickling_server_is_cut_off_at_the_deadline(base):
    with pytest.raises(UrlImageError, match="longer than"):
        fetch_image(f"{base}/trickle", UrlPolicy(allow=LOOPBACK.allow, max_bytes=LIMIT, timeout_s=1.0))


def test_bad_allow_list_entries_fail_when_the_policy_is_made():
    for entry in ("10.0.0.1/8", "http://images.example.com", "127.1", "*.*.example.com"):
        with pytest.raises(ValueError, match="allow-list entry"):
            UrlPolicy(allow=(entry,), max_bytes=LIMIT)


@pytest.fixture(scope="module")
def tls_base(tmp_path_factory) -> tuple[str, int]:
    """A loopback HTTPS server whose self-signed certificate names images.test only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test"],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve(server)
    yield str(cert), server.server_port
    server.shutdown()
    server.server_close()


def test_tls_is_verified_for_the_urls_host_name(tls_base, monkeypatch):
    cert, port = tls_base
    with pytest.raises(UrlImageError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs don't know it
        fetch_image(f"https://127.0.0.1:{port}/image", LOOPBACK)
    trusting = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(url_images, "_TLS", trusting)
    resolving(monkeypatch, {"images.test": "127.0.0.1"})
    assert fetch_image(f"https://images.test:{port}/image", LOOPBACK) == IMAGE
    with pytest.raises(UrlImageError, match="CERTIFICATE_VERIFY_FAILED"):  # the certificate names images.test only
        fetch_image(f"https://127.0.0.1:{port}/image", LOOPBACK)
