"""
Listening ports whose connections send at once when they can: :class:`EagerPort`, and
:class:`EagerListening`, the reactor the listeners' endpoints listen through.

Twisted's TCP transport queues every write: it asks the reactor to watch the socket for
writability (an ``epoll_ctl`` system call), sends in the reactor's next turn, then stops watching
(another).  For the writes made while a connection's incoming bytes are handled (the whole answer
to a keep-alive request) that queueing is right: the reactor sends the answers of every
connection it read in one turn together.  For every other write it is pure cost: a stream's next
event written on the ticker, an answer after a delay, TLS's batched records.  With 10,000 open
streams, watching and unwatching sockets was a fifth of the server's time.

So an :class:`EagerServer` connection sends such a write straight to the socket when nothing is
queued before it (order is kept), and queues what the socket does not take, as Twisted does;
during a read, or with bytes already queued, or once the connection is closing or aborted, it
writes as Twisted's transport does (so nothing written after an abort leaves).  A send that fails queues the bytes too, so that the reactor meets the
error and ends the connection in its own way.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorSSL, IReactorTCP
from twisted.internet.posixbase import PosixReactorBase
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

__all__ = ["EagerListening", "EagerPort", "EagerServer", "eager_listening"]


class EagerServer(tcp.Server):
    """A server-side TCP connection that sends a write outside of a read at once (see the module)."""

    _reading = False

    def doRead(self) -> object:
        """Read; what the protocol writes meanwhile is queued for the reactor's next turn."""
        self._reading = True
        try:
            return super().doRead()
        finally:
            self._reading = False

    def write(self, data: bytes) -> None:
        """Send ``data`` now if nothing is queued and no read is under way; queue what is left."""
        if data and self._may_send_now():
            sent = self.writeSomeData(data)
            if isinstance(sent, int):
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec: Sequence[bytes]) -> None:
        """:meth:`write` of the pieces joined."""
        self.write(b"".join(iovec))

    def _may_send_now(self) -> bool:
        return not (
            self._reading
            or self.dataBuffer
            or self._tempDataBuffer
            or not self.connected
            or self.disconnecting
            or self._aborting
            or self._writeDisconnecting
            or self._writeDisconnected
            or self.TLS
        )


class EagerPort(tcp.Port):
    """A TCP listening port whose connections are :class:`EagerServer`."""

    transport = EagerServer


@implementer(IReactorTCP, IReactorSSL)
class EagerListening:
    """``reactor`` for endpoints: ``listenTCP`` and ``listenSSL`` listen on an :class:`EagerPort`;
    anything else (``listenUNIX``, ``adoptStreamPort``, the clock) is ``reactor``'s own."""

    def __init__(self, reactor: PosixReactorBase) -> None:
        self._reactor = reactor

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> EagerPort:
        """Listen as ``reactor.listenTCP`` does, on an :class:`EagerPort`."""
        listening = EagerPort(port, factory, backlog, interface, self._reactor)
        listening.startListening()
        return listening

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = "") -> EagerPort:
        """Listen as ``reactor.listenSSL`` does (TLS in memory over TCP), on an :class:`EagerPort`; TLS
        batches its writes on this reactor (Twisted's own ``listenSSL`` times them by the global one,
        which does not run when this reactor is a private one in a thread)."""
        tls = TLSMemoryBIOFactory(contextFactory, False, factory, self._reactor)
        listening = self.listenTCP(port, tls, backlog, interface)
        listening._type = "TLS"  # what Twisted's listenSSL sets: its log lines say "TLS Port"
        return listening

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def eager_listening(reactor: Any) -> Any:
    """The reactor endpoints should listen through: an :class:`EagerListening` over a POSIX reactor,
    any other (a test's fake, Windows' IOCP) as it is."""
    return EagerListening(reactor) if isinstance(reactor, PosixReactorBase) else reactor
