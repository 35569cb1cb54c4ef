"""
Setting response headers in one go (:mod:`mockllm.headers`): the same headers, values and wire
bytes as ``Request.setHeader`` one by one, line breaks still made harmless, bad names still refused.
"""

from __future__ import annotations

from twisted.trial import unittest
from twisted.web.http_headers import InvalidHeaderName
from twisted.web.http import Request
from twisted.web.test.requesthelper import DummyChannel

from mockllm.headers import set_headers, stored_name

PAIRS = (
    (b"x-request-id", b"req_1"),
    (b"content-type", b"application/json"),
    (b"X-RateLimit-Remaining-Requests", b"499"),
    (b"openai-processing-ms", b"0"),
    (b"www-authenticate", b"Bearer"),
    (b"openai-processing-ms", b"12"),
)


def fresh() -> Request:
    """A real ``twisted.web.http.Request`` with no headers yet."""
    return Request(DummyChannel())


def one_by_one(pairs: tuple[tuple[bytes, bytes], ...]) -> Request:
    """A request whose headers were set by ``setHeader``, pair by pair."""
    request = fresh()
    for name, value in pairs:
        request.setHeader(name, value)
    return request


class SetHeadersTests(unittest.TestCase):
    """:func:`set_headers` against ``setHeader``."""

    def test_same_as_set_header(self) -> None:
        """The stored names, their order and their values are those ``setHeader`` leaves (a repeated name replaced in place)."""
        request = fresh()
        set_headers(request, PAIRS)
        self.assertEqual(list(request.responseHeaders.getAllRawHeaders()),
                         list(one_by_one(PAIRS).responseHeaders.getAllRawHeaders()))
        self.assertEqual(request.responseHeaders.getRawHeaders(b"openai-processing-ms"), [b"12"])
        self.assertEqual(request.responseHeaders.getRawHeaders("X-Request-Id"), ["req_1"])

    def test_line_breaks_are_sanitised(self) -> None:
        """A value with a line break is stored as ``setHeader`` stores it (the break a space): no header injection."""
        pairs = ((b"x-mock", b"a\r\nSet-Cookie: evil"), (b"x-other", b"b\nc"))
        request = fresh()
        set_headers(request, pairs)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"x-mock"), [b"a Set-Cookie: evil"])
        self.assertEqual(list(request.responseHeaders.getAllRawHeaders()),
                         list(one_by_one(pairs).responseHeaders.getAllRawHeaders()))

    def test_invalid_name_refused(self) -> None:
        """A name that is not an HTTP token is refused as ``setHeader`` refuses it, and nothing is set."""
        request = fresh()
        with self.assertRaises(InvalidHeaderName):
            set_headers(request, ((b"bad name", b"v"),))
        self.assertEqual(list(request.responseHeaders.getAllRawHeaders()), [])

    def test_stored_name_is_twisteds(self) -> None:
        """The stored form of a name is the key Twisted's own ``setRawHeaders`` uses, whatever the case given."""
        self.assertEqual(stored_name(b"x-ratelimit-limit-tokens"), stored_name(b"X-RATELIMIT-LIMIT-TOKENS"))
        self.assertEqual(stored_name(b"content-length"), b"Content-Length")
