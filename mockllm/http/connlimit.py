"""
``max_connections``: a wrapping factory that serves at most that many connections at once.

A connection beyond the limit is not handed to the site: as soon as it sends
anything it gets an OpenAI-shaped ``503`` with ``Connection: close`` and is
refused as :mod:`.refusal` describes.  Refused connections do not count
against the limit, so the server stays healthy however many arrive.  Each
refusal is handed, as a finished exchange (status 503, outcome ``refused``),
to ``on_refused`` (``mockllm.server.build`` passes the app's ``record``), so the
journal, the request log and the metrics see it like any other answer.

The limiter is the factory every listener serves, so its connections are where the
mTLS listener's handshakes are reported (:class:`Served`, an
:class:`~mockllm.tls.interfaces.IHandshakeObserver`): counted by ``on_handshake``, and each
refusal logged as one line with the client's address, the reason and the certificate's
subject.
"""

from __future__ import annotations

import random

from twisted.internet.interfaces import IDelayedCall, IProtocolNegotiationFactory, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer

from mockllm.behaviour.errors import APIError
from mockllm.dialects.openai import raw_response, request_id
from mockllm.http.refusal import LINGER, OnRefused, client_text, refuse, refused_exchange
from mockllm.tls.interfaces import HandshakeHook, IHandshakeObserver

__all__ = ["LINGER", "ConnectionLimit", "overloaded_error"]


def overloaded_error(limit: int) -> APIError:
    """The error a refused connection gets."""
    return APIError(
        503,
        f"The server is handling its maximum of {limit} connections; please try again later.",
        "server_error",
        None,
        "max_connections",
    )


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
        error = overloaded_error(self.limiter.limit)
        response = raw_response(error, self.request_id, (("Retry-After", "1"),))
        self.timer.cancel()
        self.timer = refuse(self.transport, response, self.clock)
        self.limiter.report(self.request_id, data, self.transport.getPeer(), error, response)

    def connectionLost(self, reason: object = None) -> None:
        """Cancel the linger timer."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


#: What a refused handshake's console line says for each reason.
REFUSALS = {
    "no-certificate": "no client certificate",
    "unknown-ca": "a client certificate from a CA this server does not trust",
    "self-signed": "a self-signed client certificate",
    "expired": "an expired client certificate",
    "not-yet-valid": "a client certificate that is not valid yet",
    "bad-certificate": "a client certificate that does not verify",
    "protocol-version": "a TLS version below 1.2",
    "client-alert": "the client refused the server's certificate",
    "closed-without-request": "the client closed after the handshake without a request "
    "(how some clients refuse a server certificate for its name)",
    "other": "the handshake failed",
}


@implementer(IHandshakeObserver)
class Served(ProtocolWrapper):
    """One connection the limit lets through.  Over TLS it holds the handshake's success back
    until the first request bytes: a client that closes before sending any refused the server
    (one the server closes first, idle or at shutdown, did not)."""

    _handshake_pending = False
    _subject: str | None = None

    def handshake(self, ok: bool, reason: str, subject: str | None) -> None:
        """The TLS handshake ended (see :class:`~mockllm.tls.interfaces.IHandshakeObserver`)."""
        self._subject = subject
        if ok:
            self._handshake_pending = True
        else:
            self.factory.handshake(False, reason, self.getPeer(), subject)

    def dataReceived(self, data: bytes) -> None:
        """Request bytes: a pending handshake counts as accepted."""
        self._accept_pending()
        super().dataReceived(data)

    def resumeProducing(self) -> None:
        """The transport's, called directly (the channel resumes it after every request; a protocol
        wrapper would find it through ``__getattr__`` after a failed lookup each time)."""
        self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        """The transport's, called directly (see :meth:`resumeProducing`)."""
        self.transport.pauseProducing()

    def stopProducing(self) -> None:
        """The transport's, called directly (see :meth:`resumeProducing`)."""
        self.transport.stopProducing()

    def loseConnection(self) -> None:
        """The server closes (an idle timeout, a shutdown): the client did not refuse a pending handshake."""
        self._accept_pending()
        super().loseConnection()

    def _accept_pending(self) -> None:
        if self._handshake_pending:
            self._handshake_pending = False
            self.factory.handshake(True, "ok", self.getPeer(), self._subject)

    def connectionLost(self, reason: object) -> None:
        """Closed before any request after a successful handshake: the client refused it."""
        if self._handshake_pending:
            self._handshake_pending = False
            self.factory.handshake(False, "closed-without-request", self.getPeer(), self._subject)
        super().connectionLost(reason)


@implementer(IProtocolNegotiationFactory)
class ConnectionLimit(WrappingFactory):
    """Wraps a factory (the ``Site``) so that at most ``limit`` connections reach it at once.

    ``on_handshake(ok, reason)`` is told each TLS handshake outcome of the connections it serves.
    """

    log = Logger()
    protocol = Served
    noisy = False

    def __init__(
        self,
        wrapped: object,
        limit: int,
        clock: IReactorTime,
        on_refused: OnRefused | None = None,
        on_handshake: HandshakeHook | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.limit = limit
        self.clock = clock
        self.on_refused = on_refused
        self._on_handshake = on_handshake
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
        return Refused(self, request_id(self._ids))

    def handshake(self, ok: bool, reason: str, peer: object, subject: str | None) -> None:
        """One TLS handshake's outcome: to ``on_handshake``, and a console line for a refusal."""
        if self._on_handshake is not None:
            self._on_handshake(ok, reason)
        if not ok:
            self.log.warn(
                "mockllm: TLS handshake refused from {client}: {why} ({reason}){subject}",
                client=client_text(peer),
                why=REFUSALS.get(reason, reason),
                reason=reason,
                subject=f", subject {subject}" if subject else "",
            )

    def report(self, rid: str, first_bytes: bytes, peer: object, error: APIError, response: bytes) -> None:
        """Hand one refusal to ``on_refused`` as a finished exchange."""
        if self.on_refused is None:
            return
        method, _, rest = first_bytes.partition(b"\r\n")[0].partition(b" ")
        target = rest.rpartition(b" ")[0] or rest
        self.on_refused(refused_exchange(rid, method, target, peer, error, response, self.clock.seconds()))
