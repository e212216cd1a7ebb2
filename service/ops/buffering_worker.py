"""gunicorn's threaded worker, with every request read in full before a thread sees it.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as it is accepted, and the
thread then reads the request with blocking calls: a client that trickles its headers or body (a
byte every few seconds) holds a thread for as long as it likes, and the default 2 workers × 2
threads were all held by four such connections. Here the worker's event loop reads each request
without blocking into a buffer — headers, then a Content-Length or chunked body — and only a
complete request goes to the thread pool, its bytes pre-loaded into gunicorn's parser. A client
that does not finish its headers within ``header_timeout`` or its whole request within
``request_timeout`` of connecting is dropped, having never cost a thread. A request whose body
is larger than facesvc accepts goes to a thread after its headers (the app refuses it, 216202,
without reading the body); so does every request of a TLS listener (gunicorn completes the TLS
handshake in the thread: terminate TLS at a proxy for this protection).

A worker accepts a connection while it has a free thread (``worker_connections = threads``):
complete requests never queue behind a busy worker while another one idles. Connections still
being read do not count; at most ``max_reading`` of them per worker.
"""
from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

from gunicorn.workers.gthread import TConn, ThreadWorker

from config.defaults import load_settings

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*(?=\r\n)", re.IGNORECASE)
MAX_HEAD = 64 * 1024
RECV = 256 * 1024


@dataclass(eq=False)
class Reading:
    """A connection whose request is still arriving."""

    conn: TConn
    header_deadline: float
    request_deadline: float
    data: bytearray = field(default_factory=bytearray)
    continued: bool = False  # "100 Continue" sent


def request_end(data: bytes, max_body: int) -> Optional[int]:
    """Where the first request in ``data`` ends (headers and body complete), or None while it
    is incomplete. A body over ``max_body`` ends at its headers: the app refuses it unread.
    Anything unparsable ends at once too: gunicorn's parser answers it."""
    head_end = data.find(_HEAD_END)
    if head_end < 0:
        return len(data) if len(data) > MAX_HEAD else None
    body_start = head_end + len(_HEAD_END)
    head = b"\r\n" + bytes(data[:head_end]) + b"\r\n"
    if _CHUNKED.search(head):
        return _chunked_end(data, body_start, max_body)
    lengths = {int(value) for value in _CONTENT_LENGTH.findall(head)}
    if len(lengths) != 1:
        return body_start  # no body, or conflicting lengths for the parser to refuse
    length = lengths.pop()
    if length > max_body:
        return body_start
    return body_start + length if len(data) >= body_start + length else None


def _chunked_end(data: bytes, pos: int, max_body: int) -> Optional[int]:
    """End of a chunked body (its last chunk and trailers) starting at ``pos``."""
    size_total = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(bytes(data[pos:line_end]).split(b";", 1)[0].strip() or b"x", 16)
        except ValueError:
            return pos  # malformed: the parser answers it
        size_total += size
        if size_total > max_body:
            return pos
        if size == 0:
            trailer_end = data.find(_HEAD_END, line_end)
            if data[line_end : line_end + 4] == _HEAD_END:
                return line_end + 4
            return trailer_end + 4 if trailer_end >= 0 else None
        pos = line_end + 2 + size + 2
        if len(data) < pos:
            return None


class BufferingWorker(ThreadWorker):
    """``gthread`` with requests read in the event loop (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = load_settings()
        self.header_timeout = settings.request_header_timeout
        self.request_timeout = settings.request_read_timeout
        self.max_reading = settings.max_reading_connections
        self.max_body = settings.limits.max_body_bytes
        self.reading: set[Reading] = set()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and len(self.reading) < self.max_reading)

    def accept(self, listener: socket.socket) -> None:
        if self.cfg.is_ssl:
            return super().accept(listener)
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        now = time.monotonic()
        reading = Reading(conn, now + self.header_timeout, now + self.request_timeout)
        self.reading.add(reading)
        self.poller.register(client, selectors.EVENT_READ, partial(self._on_readable, reading))
        if len(self.reading) >= self.max_reading:
            self.set_accept_enabled(False)

    def _on_readable(self, reading: Reading, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._drop(reading)
            return
        reading.data += chunk
        end = request_end(reading.data, self.max_body)
        if end is None:
            self._continue_if_expected(reading)
            return
        self._dispatch(reading)

    def _continue_if_expected(self, reading: Reading) -> None:
        """Answer "Expect: 100-continue" once the headers are in (C# 3.2.2 and curl wait for
        it), and take the header out so that gunicorn does not answer it again."""
        head_end = reading.data.find(_HEAD_END)
        if reading.continued or head_end < 0:
            return
        head = b"\r\n" + bytes(reading.data[:head_end]) + b"\r\n"
        match = _EXPECT.search(head)
        if match is None:
            return
        reading.continued = True
        start, stop = match.start() - 2, match.end() - 2  # positions in data ("\r\n" prefix)
        del reading.data[max(start, 0) : stop]
        try:
            reading.conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            self._drop(reading)

    def _dispatch(self, reading: Reading) -> None:
        """Hand a complete request to a thread, its bytes already in the parser."""
        self.poller.unregister(reading.conn.sock)
        self.reading.discard(reading)
        conn = reading.conn
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(reading.data))
        conn.data_ready = True
        self.nr_conns += 1
        self.enqueue_req(conn)

    def _drop(self, reading: Reading) -> None:
        try:
            self.poller.unregister(reading.conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.reading.discard(reading)
        reading.conn.close()

    def murder_pending(self) -> None:
        """Also drop the connections that did not send their request in time (the base loop
        calls this about once a second)."""
        super().murder_pending()
        now = time.monotonic()
        for reading in list(self.reading):
            headers_in = reading.data.find(_HEAD_END) >= 0
            if now > reading.request_deadline or (not headers_in and now > reading.header_deadline):
                self._drop(reading)
