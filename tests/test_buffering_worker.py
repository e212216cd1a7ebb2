"""When the buffering worker (service/ops/buffering_worker.py) considers a request complete:
pure byte-level cases; the live behaviour is in test_hostile.py and every SDK flow."""
from __future__ import annotations

import pytest

from service.ops.buffering_worker import MAX_HEAD, request_end

HEAD = b"POST /rest/2.0/face/v2/detect HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "data, end",
    [
        (HEAD, None),  # headers not finished
        (HEAD + b"\r\n", len(HEAD) + 2),  # no body
        (HEAD + b"Content-Length: 5\r\n\r\nab", None),
        (HEAD + b"Content-Length: 5\r\n\r\nabcde", len(HEAD) + 21 + 5),
        (HEAD + b"content-length:5\r\n\r\nabcdeNEXT", len(HEAD) + 20 + 5),  # lower case, no space
        (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", len(HEAD) + 40),  # conflicting: the parser refuses
        (HEAD + b"Content-Length: 999999999\r\n\r\n", len(HEAD) + 29),  # over the limit: the app refuses it unread
    ],
    ids=["partial-head", "no-body", "partial-body", "whole-body", "lower-case", "conflicting-lengths", "too-large"],
)
def test_a_request_ends_after_its_headers_and_declared_body(data, end):
    assert request_end(data, max_body=1000) == end


def test_a_chunked_body_ends_after_its_last_chunk_and_trailers():
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert request_end(head + b"5\r\nhello\r\n", 1000) is None
    assert request_end(head + b"5\r\nhello\r\n0\r\n", 1000) is None
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    assert request_end(head + body, 1000) == len(head) + len(body)
    trailers = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert request_end(head + trailers, 1000) == len(head) + len(trailers)
    assert request_end(head + b"zz\r\n", 1000) == len(head)  # malformed size: for the parser
    assert request_end(head + b"ffff\r\n", 1000) == len(head)  # chunks over the limit: the app refuses


def test_headers_that_never_end_are_handed_on_past_the_header_limit():
    assert request_end(HEAD + b"X: " + b"a" * MAX_HEAD, 1000) is not None
