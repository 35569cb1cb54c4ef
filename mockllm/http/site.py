"""
The site: :class:`MockSite`, its channel, and the guard in front of Klein.

:class:`MockSite` is a quiet ``Site`` (mockllm logs each exchange itself) whose channel
refuses a body larger than ``max_body_bytes`` from its ``Content-Length`` alone, before
Twisted reads or spools any of it: an immediate OpenAI-shaped 413, then the connection is
half-closed and what the client still sends is dropped (see :mod:`.refusal`).  A
request-header block over :data:`MAX_HEADER_BYTES` or with more than :data:`MAX_HEADERS`
fields is refused the same way with a 431 (Twisted would answer a bare 400 at 16 KiB).

The channel's timers run on the site's clock: a connection with no request in flight for
``idle_timeout_s`` is closed (Twisted's idle timeout, which a request in flight suspends),
and so is one whose request headers are not all in ``header_timeout_s`` after their first
byte (slowloris).  The site keeps its open connections (:class:`~.drain.OpenConnections`)
so that a stopping server can drain them.
:class:`UTF8Paths` hands requests to Klein except those whose path is not UTF-8, which
Klein would refuse with HTML.
"""

from __future__ import annotations

import random
import tempfile
from io import BytesIO
from typing import BinaryIO, Callable
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from mockllm.behaviour.errors import APIError
from mockllm.config.model import ServerConfig
from mockllm.dialects.openai import body_too_large, headers_too_large, raw_response, request_id
from mockllm.http.drain import OpenConnections
from mockllm.http.refusal import OnRefused, refuse, refused_exchange
from mockllm.observe.exchange import IExchange

_SERVER = ServerConfig()
#: The largest request-header block accepted: the request line and the header lines, without their line ends.
MAX_HEADER_BYTES = 64 * 1024
#: The most header fields a request may have.
MAX_HEADERS = 100


class MockChannel(HTTPChannel):
    """An ``HTTPChannel`` with mockllm's limits: 413 and 431 refusals, idle and header timeouts, draining."""

    totalHeadersSize = MAX_HEADER_BYTES
    MAX_LENGTH = MAX_HEADER_BYTES
    maxHeaders = MAX_HEADERS
    _refusal: IDelayedCall | None = None
    _header_timer: IDelayedCall | None = None
    _host: object = None
    _peer: object = None

    def getHost(self) -> object:
        """The connection's local address, asked of the transport once (Twisted asks for every
        request, and a TCP transport asks the kernel each time)."""
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> object:
        """The connection's remote address, asked of the transport once (Twisted asks for every
        request, through each wrapper: the connection limit's, TLS's; TCP makes a new address each time)."""
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer

    def connectionMade(self) -> None:
        """Start the idle clock; count the connection among the site's open ones."""
        super().connectionMade()
        self.site.connections.opened(self)

    def dataReceived(self, data: bytes) -> None:
        """Parse as usual (nothing once refused); start the header clock when a request has begun."""
        if self._refusal is not None:
            return
        super().dataReceived(data)
        if self._header_timer is None and self.site.header_timeout_s and self._awaiting_headers():
            self._header_timer = self.callLater(self.site.header_timeout_s, self._headers_too_slow)

    def _awaiting_headers(self) -> bool:
        """Whether part of a request's line or headers has arrived, but not all of them."""
        if not self.line_mode or self._handlingRequest or getattr(self.transport, "disconnecting", False):
            return False
        return bool(self.requests or self._buffer)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self.timeoutConnection()

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            if self._header_timer.active():
                self._header_timer.cancel()
            self._header_timer = None

    def timeoutConnection(self) -> None:
        """Close an idle or too slow connection, quietly (Twisted logs each one); reset it if it lingers."""
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        """Refuse a header block over :data:`MAX_HEADER_BYTES` with a 431; otherwise parse the line."""
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse_headers()
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """One line longer than the whole header block may be: a 431 (Twisted would just hang up)."""
        self._refuse_headers()

    def headerReceived(self, line: bytes) -> bool:
        """Refuse the header field after the :data:`MAX_HEADERS`-th with a 431; otherwise keep it."""
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse_headers()
            return False
        return super().headerReceived(line)

    def allHeadersReceived(self) -> None:
        """Stop the header clock; refuse a declared body over the site's limit; otherwise carry on as usual."""
        self._stop_header_clock()
        limit = self.site.max_body_bytes
        if limit is not None and self.length is not None and self.length > limit:
            self._refuse(body_too_large(limit))
            return
        super().allHeadersReceived()

    def _refuse_headers(self) -> None:
        self._stop_header_clock()
        self._refuse(headers_too_large(MAX_HEADER_BYTES, MAX_HEADERS))
        self.setRawMode()  # the rest of what arrived goes to rawDataReceived, which drops it

    def _refuse(self, error: APIError) -> None:
        site: MockSite = self.site
        rid = request_id(site.ids)
        response = raw_response(error, rid)
        self._refusal = refuse(self.transport, response, site.clock)
        # The request line, as HTTPChannel.lineReceived keeps it (no Request is complete yet).
        method, target = getattr(self, "_command", b""), getattr(self, "_path", b"")
        site.refused(rid, method, target, self.transport.getPeer(), error, response)

    def rawDataReceived(self, data: bytes) -> None:
        """Drop the rest of a refused request (the channel is in raw mode from the refusal on)."""
        if self._refusal is None:
            super().rawDataReceived(data)

    def requestDone(self, request: object) -> None:
        """An answer is done; while the server stops, its connection then closes."""
        if self.site.connections.draining:
            self.persistent = False
        super().requestDone(request)

    def wind_down(self, deadline: float) -> None:
        """The server stops: close now unless an answer is in flight that does more than wait past ``deadline``."""
        request = self.requests[0] if self._handlingRequest and self.requests else None
        if request is None or _waits_past(request, deadline):
            self.loseConnection()
        elif not request.startedWriting:
            request.setHeader(b"connection", b"close")

    def cut(self) -> None:
        """The grace is over: abort the connection (dropping what is still buffered)."""
        self.transport.abortConnection()

    def connectionLost(self, reason: object) -> None:
        """Cancel the header clock and a refusal's linger timer; leave the site's open connections."""
        self._stop_header_clock()
        if self._refusal is not None and self._refusal.active():
            self._refusal.cancel()
        super().connectionLost(reason)
        self.site.connections.closed(self)


def _waits_past(request: IRequest, deadline: float) -> bool:
    """Whether ``request``'s answer is waiting (a hold, a delay) until after ``deadline``."""
    ex = request.getComponent(IExchange)
    return ex is not None and ex.waiting_until is not None and ex.waiting_until > deadline


class MockSite(Site):
    """A ``Site`` without Twisted's access log or form parsing, refusing bodies over ``max_body_bytes`` early.

    ``on_refused`` is told about each refusal as a finished exchange (the app's ``record``).
    ``idle_timeout_s`` and ``header_timeout_s`` (0: none) are the channels' timeouts, on ``clock``.
    """

    noisy = False
    displayTracebacks = False
    protocol = MockChannel

    def __init__(
        self,
        resource: IResource,
        max_body_bytes: int | None = None,
        on_refused: OnRefused | None = None,
        clock: IReactorTime | None = None,
        idle_timeout_s: float = _SERVER.idle_timeout_s,
        header_timeout_s: float = _SERVER.header_timeout_s,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        # A JSON API never reads form arguments: skip parsing POST bodies into request.args
        # (Twisted's content-type parsing through ``email`` was a sixth of each request's cost).
        # The channels' timers (idle, headers) run on ``clock``; 0 means no timeout.
        super().__init__(resource, parsePOSTFormSubmission=False, timeout=idle_timeout_s or None, reactor=clock)
        self.max_body_bytes = max_body_bytes
        self.on_refused = on_refused
        self.clock = clock
        self.header_timeout_s = header_timeout_s or None
        #: The open connections, drained when the server stops.
        self.connections = OpenConnections(clock)
        #: Request ids of refusals, apart from every seeded generator.
        self.ids = random.Random()

    def startFactory(self) -> None:
        """Nothing to start: no access log to open, so no clock kept for its lines (Twisted's ticks every second)."""

    def log(self, request: object) -> None:
        """No combined-log line per request."""

    def getContentFile(self, length: int | None) -> BinaryIO:
        """Where a request's body goes as it arrives, as Twisted's ``Request`` keeps it by default: in
        memory under 100 kB, else a temporary file.  (Twisted asks the site first, and without this
        method raises and clears an ``AttributeError`` for every request.)"""
        return BytesIO() if length is not None and length < 100_000 else tempfile.TemporaryFile()

    def refused(self, rid: str, method: bytes, target: bytes, peer: object, error, response: bytes) -> None:
        """Hand one refusal to ``on_refused``."""
        if self.on_refused is not None:
            self.on_refused(refused_exchange(rid, method, target, peer, error, response, self.clock.seconds()))


class UTF8Paths(Resource):
    """Hands requests to Klein, except those whose path Klein would refuse with HTML."""

    isLeaf = True

    def __init__(self, klein: IResource, bad_url: Callable[[IRequest], bytes]) -> None:
        super().__init__()
        self._klein = klein
        self._bad_url = bad_url

    def render(self, request: IRequest) -> bytes | int:
        """Klein's answer, or ``bad_url``'s JSON 400 for a path that is not UTF-8."""
        path = request.path
        if not path.isascii() or path.find(b"%") >= 0:  # (bytes in bytes raises and clears a TypeError first)
            try:
                unquote_to_bytes(path).decode("utf-8")
            except UnicodeDecodeError:
                return self._bad_url(request)
        return self._klein.render(request)
