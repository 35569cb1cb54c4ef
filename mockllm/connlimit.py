"""
``max_connections``: a wrapping factory that serves at most that many connections at once.

A connection beyond the limit is not handed to the site: as soon as it sends
anything it gets an OpenAI-shaped ``503`` with ``Connection: close``, the
server half-closes its side, and whatever else the client sends is read and
dropped until it hangs up (or :data:`LINGER` seconds pass).  Half-closing
instead of closing avoids the TCP reset that could destroy the response
before the client reads it.  Refused connections do not count against the
limit, so the server stays healthy however many arrive.  Each refusal is
handed, as a finished :class:`~mockllm.exchange.Exchange` (status 503,
outcome ``refused``), to ``on_refused`` (``tap.makeService`` passes the app's
:meth:`~mockllm.app.MockLLM.record`), so the journal, the request log and the
metrics see it like any other answer.
"""

from __future__ import annotations

import random

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IProtocolNegotiationFactory, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer

from mockllm import wire
from mockllm.errors import APIError
from mockllm.exchange import REFUSED, Exchange

#: How long a refused connection may keep sending before it is dropped, in seconds.
LINGER = 10.0


def overloaded_error(limit: int) -> APIError:
    """The error a refused connection gets."""
    return APIError(
        503,
        f"The server is handling its maximum of {limit} connections; please try again later.",
        "server_error",
        None,
        "max_connections",
    )


def overloaded_response(limit: int, request_id: str) -> bytes:
    """The whole HTTP/1.1 503 a refused connection gets, with the headers every response has."""
    body = wire.dumps(overloaded_error(limit).body())
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        f"X-Request-Id: {request_id}\r\n"
        f"Openai-Version: {wire.OPENAI_VERSION}\r\n"
        "Openai-Processing-Ms: 0\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class Refused(Protocol):
    """Answers the first bytes received with the 503, half-closes, and drains until the peer leaves."""

    def __init__(self, limiter: ConnectionLimit, request_id: str) -> None:
        self.limiter = limiter
        self.request_id = request_id
        self.clock = limiter.clock
        self.answered = False
        self.timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Give the client :data:`LINGER` seconds in all."""
        self.timer = self.clock.callLater(LINGER, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        """Answer once; ignore the rest of the request."""
        if self.answered:
            return
        self.answered = True
        response = overloaded_response(self.limiter.limit, self.request_id)
        self.transport.write(response)
        self.limiter.report(self.request_id, data, self.transport.getPeer(), response)
        half_close = getattr(self.transport, "loseWriteConnection", None)
        (half_close or self.transport.loseConnection)()

    def connectionLost(self, reason: object = None) -> None:
        """Cancel the linger timer."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


@implementer(IProtocolNegotiationFactory)
class ConnectionLimit(WrappingFactory):
    """Wraps a factory (the ``Site``) so that at most ``limit`` connections reach it at once."""

    log = Logger()
    protocol = ProtocolWrapper
    noisy = False

    def __init__(
        self,
        wrapped: object,
        limit: int,
        clock: IReactorTime,
        on_refused: Callable[[Exchange], None] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.limit = limit
        self.clock = clock
        self.on_refused = on_refused
        #: How many connections have been refused since the start.
        self.refused = 0
        self._ids = random.Random()

    def acceptableProtocols(self) -> list[bytes]:
        """The wrapped factory's ALPN protocols (TLS asks the factory right under it)."""
        wrapped = IProtocolNegotiationFactory(self.wrappedFactory, None)
        return list(wrapped.acceptableProtocols()) if wrapped is not None else [b"http/1.1"]

    @property
    def active(self) -> int:
        """Connections currently served."""
        return len(self.protocols)

    def buildProtocol(self, addr: object) -> Protocol | None:
        """The site's protocol, wrapped; or a :class:`Refused` when the limit is reached."""
        if self.active < self.limit:
            return super().buildProtocol(addr)
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            self.log.warn(
                "max_connections ({limit}) reached: answering 503 ({refused} refused so far)",
                limit=self.limit,
                refused=self.refused,
            )
        return Refused(self, wire.request_id(self._ids))

    def report(self, request_id: str, first_bytes: bytes, peer: object, response: bytes) -> None:
        """Hand one refusal to ``on_refused`` as a finished exchange."""
        if self.on_refused is None:
            return
        method, _, rest = first_bytes.partition(b"\r\n")[0].partition(b" ")
        target = rest.rpartition(b" ")[0] or rest
        path, _, query = target.partition(b"?")
        now = self.clock.seconds()
        self.on_refused(
            Exchange(
                request_id=request_id,
                started=now,
                method=method.decode("latin-1"),
                path=path.decode("utf-8", "replace"),
                query=query.decode("utf-8", "replace"),
                client=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', 0)}",
                headers=[],
                body=b"",
                error=overloaded_error(self.limit).message,
                status=503,
                response_body=response.partition(b"\r\n\r\n")[2],
                outcome=REFUSED,
                first_byte_at=now,
                finished_at=now,
            )
        )
