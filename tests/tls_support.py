"""
Helpers for the TLS tests: one development PKI per test process, a TLS
listener on a loopback port 0 whose connections are all closed at cleanup,
and clients (Twisted's Agent, Python's C{ssl} in a thread).
"""

from __future__ import annotations

import atexit
import json
import shutil
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Optional

from cryptography import x509
from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from mockllm.tls import identity, pki

_pki_dir: Optional[Path] = None


def shared_pki() -> pki.DevPKI:
    """
    The development PKI (with the --bad material), made once per process in
    a temporary directory removed at exit.  Tests must not modify it; copy
    it with L{copy_pki} first.
    """
    global _pki_dir
    if _pki_dir is None:
        _pki_dir = Path(tempfile.mkdtemp(prefix="mockllm-pki-"))
        atexit.register(shutil.rmtree, _pki_dir, True)
        pki.generate_dev_pki(_pki_dir, bad=True)
    return pki.DevPKI(_pki_dir)


def temp_path(testcase) -> Path:
    """
    A path (not yet created) in a temporary directory removed after the
    test; unlike C{mktemp} it never lands in the working directory, which
    under pytest is the checkout.
    """
    parent = Path(tempfile.mkdtemp(prefix="mockllm-test-"))
    testcase.addCleanup(shutil.rmtree, parent, True)
    return parent / "d"


def copy_pki(testcase) -> pki.DevPKI:
    """
    A private copy of L{shared_pki} in a temporary directory.
    """
    target = temp_path(testcase)
    shutil.copytree(shared_pki().directory, target)
    return pki.DevPKI(target)


def ca_issued(dev: pki.DevPKI) -> pki.Issued:
    """
    The CA of C{dev} with its key.
    """
    return pki.load_issued(dev.path("ca.pem"), dev.path("ca.key"))


class Hello(Resource):
    """
    A trivial app: counts requests and answers with the caller's identity as JSON.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.peers = identity.PeerIdentities()

    def render_GET(self, request):
        """
        JSON of L{identity.PeerIdentities.describe} plus C{"verified": bool}.
        """
        self.requests += 1
        body = self.peers.describe(request)
        body["verified"] = self.peers.identify(request) is not None
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()


class _Tracked(ProtocolWrapper):
    def connectionLost(self, reason):
        ProtocolWrapper.connectionLost(self, reason)
        self.factory.lost.pop(self).callback(None)


class Tracker(WrappingFactory):
    """
    Wraps a server factory; L{close_all} aborts the connections still open.
    """

    protocol = _Tracked

    def __init__(self, wrapped) -> None:
        super().__init__(wrapped)
        self.lost: dict = {}

    def buildProtocol(self, addr):
        """
        Build and remember a wrapped protocol.
        """
        proto = super().buildProtocol(addr)
        self.lost[proto] = defer.Deferred()
        return proto

    def close_all(self) -> defer.Deferred:
        """
        Abort every open connection; fires when all are gone.
        """
        waits = list(self.lost.values())
        for proto in list(self.lost):
            if proto.transport is not None:
                proto.transport.abortConnection()
        return defer.gatherResults(waits)


def listen(testcase, factory, tls=None) -> int:
    """
    Listen on 127.0.0.1 port 0 (TLS with connection creator C{tls}, plain
    TCP if None) until the test ends; return the port number.  All
    connections are closed at cleanup.
    """
    tracker = Tracker(factory)
    if tls is not None:
        endpoint = SSL4ServerEndpoint(reactor, 0, tls, backlog=1024, interface="127.0.0.1")
    else:
        endpoint = TCP4ServerEndpoint(reactor, 0, backlog=1024, interface="127.0.0.1")
    port = testcase.successResultOf(endpoint.listen(tracker))
    testcase.addCleanup(tracker.close_all)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port


def serve(testcase, tls) -> tuple[int, Hello]:
    """
    Serve L{Hello} over TLS until the test ends; return the port and the app.
    """
    app = Hello()
    return listen(testcase, Site(app), tls), app


@implementer(IPolicyForHTTPS)
class _FixedPolicy:
    def __init__(self, options) -> None:
        self.options = options

    def creatorForNetloc(self, hostname, port):
        return self.options


def twisted_get(
    testcase, port: int, dev: pki.DevPKI, client: Optional[str] = "client", host: str = "localhost"
) -> defer.Deferred:
    """
    GET / with Twisted's Agent over TLS to C{host} (verified with
    service_identity against dev's CA), presenting C{client}.pem/.key (None:
    no certificate).  Fires with the decoded JSON body.
    """
    ca = Certificate.loadPEM(dev.path("ca.pem").read_bytes())
    kwargs = {}
    if client is not None:
        pem = dev.path(f"{client}.key").read_bytes() + dev.path(f"{client}.pem").read_bytes()
        kwargs["clientCertificate"] = PrivateCertificate.loadPEM(pem)
    options = optionsForClientTLS(host, trustRoot=ca, **kwargs)
    pool = HTTPConnectionPool(reactor, persistent=True)
    testcase.addCleanup(pool.closeCachedConnections)
    agent = Agent(reactor, contextFactory=_FixedPolicy(options), pool=pool)
    d = agent.request(b"GET", f"https://{host}:{port}/".encode())
    d.addCallback(readBody)
    d.addCallback(json.loads)
    return d


def client_context(
    dev: pki.DevPKI, client: Optional[str] = "client", version: Optional[ssl.TLSVersion] = None
) -> ssl.SSLContext:
    """
    A Python C{ssl} client context trusting dev's CA, presenting
    C{client}.pem/.key unless None, pinned to C{version} if given (with
    OpenSSL's security level lowered so old versions can be offered).
    """
    ctx = ssl.create_default_context(cafile=str(dev.path("ca.pem")))
    if client is not None:
        ctx.load_cert_chain(str(dev.path(f"{client}.pem")), str(dev.path(f"{client}.key")))
    if version is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


class BlockingClient:
    """
    A Python C{ssl} connection; its methods block, so call them with
    L{deferToThread} (see L{in_thread}).
    """

    def __init__(self, port: int, ctx: ssl.SSLContext, host: str = "localhost") -> None:
        """
        Connect and complete the client side of the handshake.
        """
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            self.tls = ctx.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def get(self) -> bytes:
        """
        GET / (keep-alive) and return the body.  A refusal that the server
        sends after the client's side of a TLS 1.3 handshake surfaces here.
        """
        self.tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, body = data.split(b"\r\n\r\n", 1)
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += self._recv()
        return body

    def _recv(self) -> bytes:
        chunk = self.tls.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def server_cert(self) -> x509.Certificate:
        """
        The certificate the server presented.
        """
        return x509.load_der_x509_certificate(self.tls.getpeercert(binary_form=True))

    def close(self) -> None:
        """
        Close the connection.
        """
        self.tls.close()


def in_thread(f, *args, **kwargs) -> defer.Deferred:
    """
    Run blocking C{f} in the reactor's thread pool.
    """
    return deferToThread(f, *args, **kwargs)


def one_request(port: int, ctx: ssl.SSLContext, host: str = "localhost") -> bytes:
    """
    Blocking: connect, GET /, close; return the body or raise the TLS error.
    """
    client = BlockingClient(port, ctx, host)
    try:
        return client.get()
    finally:
        client.close()


class HandshakeLog:
    """
    An C{on_handshake} hook that records C{(ok, reason)} events and lets a
    test wait for them.
    """

    def __init__(self) -> None:
        self.events: list[tuple[bool, str]] = []
        self._waiting: list[tuple[int, defer.Deferred]] = []

    def __call__(self, ok: bool, reason: str) -> None:
        """
        Record one handshake outcome.
        """
        self.events.append((ok, reason))
        ready = [w for w in self._waiting if len(self.events) >= w[0]]
        self._waiting = [w for w in self._waiting if w not in ready]
        for _, d in ready:
            d.callback(list(self.events))

    def wait(self, count: int = 1) -> defer.Deferred:
        """
        Fires with the events once at least C{count} were recorded.
        """
        if len(self.events) >= count:
            return defer.succeed(list(self.events))
        d: defer.Deferred = defer.Deferred()
        self._waiting.append((count, d))
        return d


def attempt(port: int, ctx: ssl.SSLContext, host: str = "localhost") -> tuple[str, object]:
    """
    Blocking: try one GET.  Returns C{("ok", body)}, or C{("handshake", exc)}
    if the client's handshake failed, or C{("request", exc)} if the error
    came after it (how a TLS 1.3 server's refusal of a client certificate
    reaches the client).
    """
    try:
        client = BlockingClient(port, ctx, host)
    except (ssl.SSLError, OSError) as e:
        return "handshake", e
    try:
        return "ok", client.get()
    except (ssl.SSLError, OSError) as e:
        return "request", e
    finally:
        client.close()
