"""Images named by URL (v3's ``image_type=URL``): the server downloads them, so every hop is
checked against an allow-list before a byte is sent, and the download is bounded in time and
size.

The danger is server-side request forgery: a URL naming the cloud metadata service, a port on
localhost or an internal host. A host is resolved once, every address it resolves to is
checked, and the connection goes to a checked address: http.client never resolves the name
again, so a DNS answer that changes between check and connect (rebinding) cannot slip past.
The Host header, SNI and the certificate check still use the URL's host name.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union
from urllib.parse import urljoin, urlsplit

_IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_SockAddr = tuple  # getaddrinfo's: (host, port) or (host, port, flowinfo, scope_id)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
# getaddrinfo (inet_aton) reads a name whose last label is a number as IPv4: "2130706433",
# "0x7f.1", "127.1" and "0177.0.0.1" are all 127.0.0.1. Only the dotted-quad form is taken.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_TLS = ssl.create_default_context()


class UrlImageError(Exception):
    """The image could not be downloaded; the message says why (v3 answers 222204)."""


@dataclass(frozen=True)
class UrlPolicy:
    """Which image URLs the server downloads, and within which bounds.

    ``allow`` (empty: URL images are off) holds entries of four kinds:

    - ``*``: any host whose addresses are all public;
    - a host name, exact and case-insensitive: ``images.example.com``;
    - ``*.example.com``: any subdomain of example.com (not example.com itself);
    - an IP network in CIDR form: ``10.0.0.0/8``, ``127.0.0.1/32``, ``::1/128`` (a bare
      address counts as its /32 or /128).

    Every address the host resolves to must pass: one inside a network entry does, whatever
    the host's name; any other must be public (not private, loopback, link-local, multicast,
    reserved, unspecified or site-local, nor such an IPv4 address in IPv6 form: mapped,
    6to4, NAT64) and the host must match ``*`` or a name entry. So only a network entry ever
    opens a private address; a name entry or ``*`` never does.

    ``timeout_s`` bounds the whole download (DNS lookups, connections, redirects, reads);
    ``max_redirects`` counts the redirects followed, each hop checked like the first URL.
    """

    allow: tuple[str, ...]
    max_bytes: int
    timeout_s: float = 10.0
    max_redirects: int = 3

    def __post_init__(self) -> None:
        _rules(self.allow)  # a bad entry fails where the settings are read, not on a request


def fetch_image(url: str, policy: UrlPolicy) -> bytes:
    """The body of a 200 answer to GET ``url`` under ``policy``, redirects followed.
    Any refusal or failure raises ``UrlImageError``."""
    if not policy.allow:
        raise UrlImageError("image URLs are not enabled on this server")
    rules = _rules(policy.allow)
    deadline = time.monotonic() + policy.timeout_s
    try:
        for _ in range(policy.max_redirects + 1):
            target = _target(url)
            location, body = _get(target, _addresses(target, rules, deadline), policy.max_bytes, deadline)
            if location is None:
                return body
            url = urljoin(url, location)
    except TimeoutError:
        raise UrlImageError(f"the download took longer than {policy.timeout_s:g} s") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise UrlImageError(f"the download failed: {e!r}") from None
    raise UrlImageError(f"more than {policy.max_redirects} redirects")


@dataclass(frozen=True)
class _Rules:
    any_public: bool
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[_IPNetwork, ...]

    def name_allows(self, host: str) -> bool:
        return self.any_public or host in self.names or host.endswith(self.suffixes)


@lru_cache(maxsize=None)
def _rules(allow: tuple[str, ...]) -> _Rules:
    any_public, names, suffixes, networks = False, set(), [], []
    for entry in allow:
        text = entry.strip().lower().rstrip(".")
        if text == "*":
            any_public = True
        elif text.startswith("*.") and _is_host_name(text[2:]):
            suffixes.append(text[1:])
        elif _is_host_name(text):
            names.add(text)
        else:
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError:
                raise ValueError(f"allow-list entry {entry!r} is not *, a host name, *.domain or a CIDR network") from None
    return _Rules(any_public, frozenset(names), tuple(suffixes), tuple(networks))


def _is_host_name(text: str) -> bool:
    return bool(_HOST_NAME.fullmatch(text)) and not _NUMERIC_LABEL.fullmatch(text.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class _Target:
    tls: bool
    host: str  # what is resolved, matched, sent as SNI and checked against the certificate
    port: int
    host_header: str
    path: str


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UrlImageError(f"bad URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlImageError(f"scheme {parts.scheme!r} is not http or https")
    if "@" in parts.netloc:
        raise UrlImageError("credentials in the URL are not accepted")
    host = _host(parts.hostname)
    tls = parts.scheme == "https"
    literal = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(
        tls=tls,
        host=host,
        port=port if port is not None else (443 if tls else 80),
        host_header=literal if port is None else f"{literal}:{port}",
        path=path,
    )


def _host(hostname: Optional[str]) -> str:
    """The URL's host (urlsplit lower-cased it and took IPv6 brackets off): a host name or an
    IP address in its usual form, nothing getaddrinfo would read another way."""
    if not hostname:
        raise UrlImageError("the URL names no host")
    host = hostname.rstrip(".")
    if _is_host_name(host):
        return host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise UrlImageError(f"host {hostname!r} is neither a host name nor an IP address in its usual form") from None


def _addresses(target: _Target, rules: _Rules, deadline: float) -> list[tuple[int, _SockAddr]]:
    """The host's addresses, resolved once, each allowed by ``rules``."""
    named = rules.name_allows(target.host)
    if not named and not rules.networks:
        raise UrlImageError(f"host {target.host} is not allowed")  # and no DNS query for it
    addresses = _resolve(target.host, target.port, deadline)
    for _, sockaddr in addresses:
        ip = _unmapped(ipaddress.ip_address(sockaddr[0]))
        if any(ip in network for network in rules.networks):
            continue
        if not _is_public(ip):
            raise UrlImageError(f"host {target.host} has address {ip}, which is not public and not allowed")
        if not named:
            raise UrlImageError(f"host {target.host} is not allowed")
    return addresses


def _resolve(host: str, port: int, deadline: float) -> list[tuple[int, _SockAddr]]:
    """getaddrinfo has no timeout of its own: it runs on a thread, left behind if the
    resolver is slower than the time left."""
    answer: list = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as e:  # reported to the caller, whatever it is
            answer.append(e)

    thread = threading.Thread(target=lookup, name="url-image-dns", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host}")
    if isinstance(answer[0], Exception):
        raise UrlImageError(f"cannot resolve {host}: {answer[0]}")
    return [(family, sockaddr) for family, _, _, _, sockaddr in answer[0]]


def _unmapped(ip: _IPAddress) -> _IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address, for every rule."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_public(ip: _IPAddress) -> bool:
    # NAT64 (64:ff9b::/96) and IPv4-compatible forms lie in ::/8, which is_reserved covers.
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or (ip.sixtofour is not None and not _is_public(ip.sixtofour)):
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _connect(addresses: list[tuple[int, _SockAddr]], target: _Target, deadline: float) -> socket.socket:
    """A connection to the first checked address that answers, TLS verified for the URL's host."""
    error: OSError = ConnectionError("no address")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            # the handshake as a whole is bounded by the socket's timeout (one deadline in _ssl)
            return _TLS.wrap_socket(sock, server_hostname=target.host) if target.tls else sock
        except OSError as e:
            sock.close()
            error = e
    raise error


class _DeadlineSocket(io.RawIOBase):
    """The socket as http.client sees it: before every receive the timeout is set to the time
    left, so a server trickling bytes (headers, chunk sizes or body) is cut off at the
    deadline, not one timeout per byte later."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.users = 1  # the connection; each makefile() reader adds one, as socket.makefile does

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.sock.settimeout(_remaining(self.deadline))
        return self.sock.recv_into(buffer)

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(_remaining(self.deadline))
        self.sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        self.users += 1
        return io.BufferedReader(self)

    def close(self) -> None:
        # The socket closes with its last user: http.client closes the connection as soon as an
        # answer says "Connection: close" (any HTTP/1.0 server), before the body is read.
        self.users -= 1
        if self.users <= 0:
            self.sock.close()


def _get(
    target: _Target, addresses: list[tuple[int, _SockAddr]], max_bytes: int, deadline: float
) -> tuple[Optional[str], bytes]:
    """One GET: (a redirect's Location, b"") or (None, the body)."""
    connection = http.client.HTTPConnection(target.host, target.port)
    # set here, so that the connection never connects (nor resolves the name) by itself
    connection.sock = _DeadlineSocket(_connect(addresses, target, deadline), deadline)
    response = None
    try:
        connection.request(
            "GET", target.path, headers={"Host": target.host_header, "User-Agent": "facesvc", "Connection": "close"}
        )
        response = connection.getresponse()
        if response.status in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise UrlImageError(f"HTTP {response.status} without a Location")
            return location, b""
        if response.status != 200:
            raise UrlImageError(f"HTTP {response.status} {response.reason}")
        if response.length is not None and response.length > max_bytes:
            raise UrlImageError(f"the image is {response.length} bytes, over the limit of {max_bytes}")
        body = bytearray()
        while chunk := response.read(min(_CHUNK, max_bytes + 1 - len(body))):
            body += chunk
            if len(body) > max_bytes:
                raise UrlImageError(f"the image is over the limit of {max_bytes} bytes")
        return None, bytes(body)
    finally:
        if response is not None:
            response.close()
        connection.close()
