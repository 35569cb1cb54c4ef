"""
Connections that send at once (:mod:`mockllm.http.eager`), over real sockets: a write outside of
a read goes straight to the socket and the reactor never watches it; a write during a read is
queued as Twisted queues it; what the socket does not take is queued, and every byte arrives in
order; nothing written after an abort leaves; the listeners' endpoints listen on such ports (TCP
and TLS), other reactors are left alone.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest

from mockllm.http.eager import EagerListening, EagerPort, eager_listening


class Collect(Protocol):
    """A client keeping what it receives; ``done`` fires with it once ``expected`` bytes came."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received: list[bytes] = []
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        if sum(map(len, self.received)) >= self.expected and not self.done.called:
            self.done.callback(b"".join(self.received))


class Sender(Protocol):
    """A server protocol that, on connection, writes ``pieces`` from a timer (outside any read) and
    notes, after each write, whether anything stayed queued and whether the reactor watches it."""

    def __init__(self, pieces: list[bytes], seen: list[tuple[bool, bool]]) -> None:
        self.pieces = pieces
        self.seen = seen

    def connectionMade(self) -> None:
        reactor.callLater(0, self.send)

    def send(self) -> None:
        for piece in self.pieces:
            self.transport.write(piece)
            queued = bool(self.transport.dataBuffer or self.transport._tempDataBuffer)
            self.seen.append((queued, self.transport in reactor.getWriters()))


class Echo(Protocol):
    """A server protocol answering each read, noting whether the answer was queued."""

    def __init__(self, seen: list[bool]) -> None:
        self.seen = seen

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())
        self.seen.append(bool(self.transport._tempDataBuffer))


class EagerTests(unittest.TestCase):
    """:class:`~mockllm.http.eager.EagerServer` over a real loopback connection."""

    def listen(self, protocol: Protocol) -> int:
        """Listen on an :class:`EagerPort` with ``protocol`` for every connection; its port number."""
        port = EagerListening(reactor).listenTCP(0, Factory.forProtocol(lambda: protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, EagerPort)
        return port.getHost().port

    async def connect(self, number: int, client: Collect) -> bytes:
        """Connect ``client`` to port ``number``; what it received once it has all it expects."""
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", number), client)
        self.addCleanup(client.transport.loseConnection)
        return await client.done

    async def test_write_outside_a_read_is_sent_at_once(self) -> None:
        """A timer's writes leave at once: nothing queued, the socket never watched for writing."""
        seen: list[tuple[bool, bool]] = []
        number = self.listen(Sender([b"data: one\n\n", b"data: two\n\n"], seen))
        received = await self.connect(number, Collect(22))
        self.assertEqual(received, b"data: one\n\ndata: two\n\n")
        self.assertEqual(seen, [(False, False), (False, False)])

    async def test_write_during_a_read_is_queued(self) -> None:
        """An answer written while the request's bytes are handled is queued for the reactor's next turn, as Twisted does."""
        seen: list[bool] = []
        number = self.listen(Echo(seen))
        client = Collect(5)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", number), client)
        self.addCleanup(client.transport.loseConnection)
        client.transport.write(b"hello")
        self.assertEqual(await client.done, b"HELLO")
        self.assertEqual(seen, [True])

    async def test_what_the_socket_does_not_take_is_queued_in_order(self) -> None:
        """A write larger than the socket takes is sent in part and the rest queued; a later write
        queues behind it; every byte arrives, in order."""
        big = bytes(range(256)) * (32 * 1024)  # 8 MiB
        seen: list[tuple[bool, bool]] = []
        number = self.listen(Sender([big, b"END"], seen))
        received = await self.connect(number, Collect(len(big) + 3))
        self.assertEqual(len(received), len(big) + 3)
        self.assertTrue(received == big + b"END")
        self.assertEqual(seen, [(True, True), (True, True)])


class Aborter(Protocol):
    """A server protocol that, on a timer, aborts its connection and then writes."""

    def connectionMade(self) -> None:
        reactor.callLater(0, self.abort_then_write)

    def abort_then_write(self) -> None:
        self.transport.abortConnection()
        self.transport.write(b"late")


class Lost(Protocol):
    """A client that fires ``done`` with what it received when its connection ends."""

    def __init__(self) -> None:
        self.received = b""
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object) -> None:
        self.done.callback(self.received)


class AbortTests(unittest.TestCase):
    """An aborted connection sends nothing more, as Twisted's transport does."""

    async def test_nothing_written_after_an_abort_leaves(self) -> None:
        """A write after ``abortConnection`` is not sent at once: the peer sees the connection end with no bytes."""
        port = EagerListening(reactor).listenTCP(0, Factory.forProtocol(Aborter), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Lost()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
        self.assertEqual(await client.done, b"")


class ListeningTests(unittest.TestCase):
    """What the listeners' endpoints listen on."""

    async def test_tcp_endpoint_listens_on_an_eager_port(self) -> None:
        """A ``tcp:`` description parsed against :func:`eager_listening`'s reactor listens on an :class:`EagerPort`."""
        port = await serverFromString(eager_listening(reactor), "tcp:0:interface=127.0.0.1").listen(Factory.forProtocol(Protocol))
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, EagerPort)

    def test_tls_listens_on_an_eager_port(self) -> None:
        """``listenSSL`` (what ``mtls:`` and ``ssl:`` use) puts TLS in memory over an :class:`EagerPort`, a "TLS" port."""
        from twisted.internet.ssl import CertificateOptions

        port = EagerListening(reactor).listenSSL(0, Factory.forProtocol(Protocol), CertificateOptions(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, EagerPort)
        self.assertEqual(port._type, "TLS")

    def test_other_reactors_left_alone(self) -> None:
        """A reactor that is not a POSIX one (a test's fake) is used as it is; anything else is the reactor's own."""
        fake = MemoryReactor()
        self.assertIs(eager_listening(fake), fake)
        self.assertEqual(EagerListening(reactor).listenUNIX, reactor.listenUNIX)
