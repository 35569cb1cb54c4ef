"""
Real TLS over loopback against L{mockllm.ReloadableServerTLS}: who gets
in, who is refused at the handshake, identity, reload and TLS faults.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import service_identity
from cryptography import x509
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web.client import Agent, readBody
from twisted.internet import reactor
from twisted.web.server import Site

from mockllm.tls import identity, pki
from mockllm.tls.material import certificate_names, name_warnings
from mockllm.tls.interfaces import TLSConfigError
from mockllm.tls.reload import detached, reload_response
from mockllm.tls.server import ReloadableServerTLS
from tests import tls_support as ts
from tests.observe_support import observed_app
from tests.support import RawHTTP


def make_tls(dev: pki.DevPKI, **kwargs) -> ReloadableServerTLS:
    """
    The server's connection creator for the files of C{dev}.
    """
    return ReloadableServerTLS(
        dev.path("server.pem"), dev.path("server.key"), dev.path("ca.pem"), **kwargs
    )


def replace(path: Path, data: bytes, private: bool = False) -> None:
    """
    Replace the file at C{path} (the way a cert manager would).
    """
    path.unlink()
    pki.write_new(path, data, private)


class RefusalTests:
    """
    Mixin: the handshake outcomes for one client TLS version (C{version}).
    """

    timeout = 20
    version: ssl.TLSVersion
    expected_version: str

    def setUp(self) -> None:
        self.dev = ts.shared_pki()
        self.log = ts.HandshakeLog()
        self.port, self.app = ts.serve(self, make_tls(self.dev, on_handshake=self.log))

    @defer.inlineCallbacks
    def refused(self, client, reason):
        """
        C{client} is refused at the handshake for C{reason}; no request reaches the app.
        """
        stage, error = yield ts.in_thread(
            ts.attempt, self.port, ts.client_context(self.dev, client, self.version)
        )
        self.assertIsInstance(error, (ssl.SSLError, ConnectionError))
        if self.version == ssl.TLSVersion.TLSv1_2:
            # Before TLS 1.3 the client learns of the refusal in its handshake.
            self.assertEqual(stage, "handshake")
        self.assertEqual((yield self.log.wait()), [(False, reason)])
        self.assertEqual(self.app.requests, 0)

    @defer.inlineCallbacks
    def test_valid_client_accepted(self):
        """
        A client certificate from the trusted CA gets a response, over the expected version.
        """
        stage, body = yield ts.in_thread(
            ts.attempt, self.port, ts.client_context(self.dev, "client", self.version)
        )
        self.assertEqual(stage, "ok")
        seen = json.loads(body)
        self.assertEqual(seen["tls_version"], self.expected_version)
        self.assertTrue(seen["verified"])
        self.assertEqual(self.log.events, [(True, "ok")])

    def test_no_certificate_refused(self):
        """
        A client presenting no certificate is refused ("no-certificate").
        """
        return self.refused(None, "no-certificate")

    def test_other_ca_refused(self):
        """
        A certificate signed by a CA outside the bundle is refused ("unknown-ca").
        """
        return self.refused("bad-other-ca-client", "unknown-ca")

    def test_expired_refused(self):
        """
        An expired certificate from the trusted CA is refused ("expired").
        """
        return self.refused("bad-expired-client", "expired")

    def test_not_yet_valid_refused(self):
        """
        A not-yet-valid certificate from the trusted CA is refused ("not-yet-valid").
        """
        return self.refused("bad-not-yet-valid-client", "not-yet-valid")

    def test_self_signed_refused(self):
        """
        A self-signed client certificate is refused ("self-signed").
        """
        return self.refused("bad-self-signed-client", "self-signed")


class TLS13RefusalTests(RefusalTests, unittest.TestCase):
    """
    Handshake outcomes for TLS 1.3 clients.
    """

    version = ssl.TLSVersion.TLSv1_3
    expected_version = "TLSv1.3"


class TLS12RefusalTests(RefusalTests, unittest.TestCase):
    """
    Handshake outcomes for TLS 1.2 clients.
    """

    version = ssl.TLSVersion.TLSv1_2
    expected_version = "TLSv1.2"

    def test_tls_1_1_refused(self):
        """
        A TLS 1.1 client is refused at the handshake ("protocol-version"), certificate or not.
        """
        self.version = ssl.TLSVersion.TLSv1_1
        return self.refused("client", "protocol-version")


class TwistedClientTests(unittest.TestCase):
    """
    Twisted's own client (C{optionsForClientTLS}, service_identity) against the server.
    """

    timeout = 20

    def setUp(self) -> None:
        self.dev = ts.shared_pki()
        self.log = ts.HandshakeLog()
        self.port, self.app = ts.serve(self, make_tls(self.dev, on_handshake=self.log))

    @defer.inlineCallbacks
    def test_client_certificate_accepted(self):
        """
        With a client certificate the request succeeds over TLS 1.3 and the
        app sees the verified identity.
        """
        seen = yield ts.twisted_get(self, self.port, self.dev)
        self.assertEqual(seen["subject"], "CN=mockllm-client,O=mockllm development")
        self.assertEqual(seen["tls_version"], "TLSv1.3")
        self.assertEqual(self.log.events, [(True, "ok")])

    @defer.inlineCallbacks
    def test_no_certificate_refused(self):
        """
        Without a client certificate no response arrives and the server
        refused the handshake.
        """
        with self.assertRaises(Exception):
            yield ts.twisted_get(self, self.port, self.dev, client=None)
        self.assertEqual((yield self.log.wait()), [(False, "no-certificate")])
        self.assertEqual(self.app.requests, 0)


class OptionalModeTests(unittest.TestCase):
    """
    C{client_cert="optional"}: no certificate is fine, a bad one is not.
    """

    timeout = 20

    def setUp(self) -> None:
        self.dev = ts.shared_pki()
        self.log = ts.HandshakeLog()
        tls_ = make_tls(self.dev, client_cert="optional", on_handshake=self.log)
        self.port, self.app = ts.serve(self, tls_)

    @defer.inlineCallbacks
    def test_no_certificate_accepted(self):
        """
        A client without a certificate is served, with no identity.
        """
        stage, body = yield ts.in_thread(ts.attempt, self.port, ts.client_context(self.dev, None))
        self.assertEqual(stage, "ok")
        seen = json.loads(body)
        self.assertFalse(seen["verified"])
        self.assertIsNone(seen["subject"])
        self.assertEqual(seen["tls_version"], "TLSv1.3")

    @defer.inlineCallbacks
    def test_valid_certificate_identified(self):
        """
        A valid certificate is accepted and identified.
        """
        stage, body = yield ts.in_thread(ts.attempt, self.port, ts.client_context(self.dev))
        self.assertEqual(stage, "ok")
        self.assertTrue(json.loads(body)["verified"])

    @defer.inlineCallbacks
    def test_presented_certificate_must_verify(self):
        """
        A certificate from another CA is still refused at the handshake.
        """
        stage, _ = yield ts.in_thread(
            ts.attempt, self.port, ts.client_context(self.dev, "bad-other-ca-client")
        )
        self.assertNotEqual(stage, "ok")
        self.assertEqual((yield self.log.wait()), [(False, "unknown-ca")])
        self.assertEqual(self.app.requests, 0)


class CABundleTests(unittest.TestCase):
    """
    A CA bundle with several CAs trusts clients of each.
    """

    timeout = 20

    @defer.inlineCallbacks
    def test_clients_of_each_ca_accepted(self):
        """
        Clients signed by either CA of a two-CA bundle are both served.
        """
        dev = ts.copy_pki(self)
        second_ca = pki.make_ca("second CA")
        second = pki.client_cert(second_ca, "second-client")
        pki.write_new(dev.path("client2.pem"), second.cert_pem())
        pki.write_new(dev.path("client2.key"), second.key_pem(), private=True)
        bundle = dev.path("bundle.pem")
        pki.write_new(bundle, dev.path("ca.pem").read_bytes() + second_ca.cert_pem())
        server = ReloadableServerTLS(dev.path("server.pem"), dev.path("server.key"), bundle)
        port, _ = ts.serve(self, server)
        first = yield ts.twisted_get(self, port, dev, "client")
        other = yield ts.twisted_get(self, port, dev, "client2")
        self.assertEqual(first["subject"], "CN=mockllm-client,O=mockllm development")
        self.assertEqual(other["subject"], "CN=second-client,O=mockllm development")

    @defer.inlineCallbacks
    def test_clients_of_each_ca_file_accepted(self):
        """
        Two CA files (``--tls-ca`` given twice, or ``caCerts=a,b``): clients of each are served.
        """
        dev = ts.copy_pki(self)
        second_ca = pki.make_ca("second CA")
        second = pki.client_cert(second_ca, "second-client")
        pki.write_new(dev.path("client2.pem"), second.cert_pem())
        pki.write_new(dev.path("client2.key"), second.key_pem(), private=True)
        pki.write_new(dev.path("ca2.pem"), second_ca.cert_pem())
        server = ReloadableServerTLS(dev.path("server.pem"), dev.path("server.key"), [dev.path("ca.pem"), dev.path("ca2.pem")])
        port, _ = ts.serve(self, server)
        first = yield ts.twisted_get(self, port, dev, "client")
        other = yield ts.twisted_get(self, port, dev, "client2")
        self.assertEqual(first["subject"], "CN=mockllm-client,O=mockllm development")
        self.assertEqual(other["subject"], "CN=second-client,O=mockllm development")


class ServerIdentityTests(unittest.TestCase):
    """
    The development server certificate, as clients check it.
    """

    def test_verifies_for_localhost(self):
        """
        service_identity accepts the server certificate for localhost,
        127.0.0.1 and ::1, and rejects another name.
        """
        cert = pki.load_issued(ts.shared_pki().path("server.pem"), ts.shared_pki().path("server.key")).cert
        verify_certificate_hostname(cert, "localhost")
        verify_certificate_ip_address(cert, "127.0.0.1")
        verify_certificate_ip_address(cert, "::1")
        with self.assertRaises(service_identity.VerificationError):
            verify_certificate_hostname(cert, "example.com")


class IdentityTests(unittest.TestCase):
    """
    L{identity.PeerIdentities} on real connections.
    """

    timeout = 20

    def setUp(self) -> None:
        self.dev = ts.shared_pki()

    @defer.inlineCallbacks
    def test_fields_match_client_certificate(self):
        """
        Subject, issuer, serial and fingerprint are those of the presented
        certificate, in the documented formats.
        """
        port, _ = ts.serve(self, make_tls(self.dev))
        seen = yield ts.twisted_get(self, port, self.dev)
        cert = pki.load_issued(self.dev.path("client.pem"), self.dev.path("client.key")).cert
        self.assertEqual(seen["issuer"], "CN=mockllm development CA,O=mockllm development")
        self.assertEqual(int(seen["serial"], 16), cert.serial_number)
        self.assertEqual(seen["serial"], seen["serial"].upper())
        digest = seen["fingerprint_sha256"].replace(":", "")
        self.assertEqual(bytes.fromhex(digest), cert.fingerprint(identity.hashes.SHA256()))
        self.assertEqual(len(seen["fingerprint_sha256"]), 32 * 3 - 1)
        self.assertTrue(seen["cipher"])

    @defer.inlineCallbacks
    def test_plain_http_has_no_identity(self):
        """
        Over plain HTTP every field is None and there is no peer identity.
        """
        port = ts.listen(self, Site(ts.Hello()))
        body = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}/".encode())
        seen = json.loads((yield readBody(body)))  # noqa
        self.assertEqual(seen, dict.fromkeys(identity.FIELDS, None) | {"verified": False})

    @defer.inlineCallbacks
    def test_described_once_per_connection(self):
        """
        Requests sharing a keep-alive connection compute the identity once.
        """
        calls = []
        real = identity._describe
        self.patch(identity, "_describe", lambda conn: calls.append(conn) or real(conn))
        port, app = ts.serve(self, make_tls(self.dev))
        client = yield ts.in_thread(ts.BlockingClient, port, ts.client_context(self.dev))
        try:
            first = yield ts.in_thread(client.get)
            second = yield ts.in_thread(client.get)
        finally:
            yield ts.in_thread(client.close)
        self.assertEqual(first, second)
        self.assertEqual(app.requests, 2)
        self.assertEqual(len(calls), 1)


class IdentityCacheTests(unittest.TestCase):
    """
    L{identity.PeerIdentities.identify} finds a channel's identity once.
    """

    def test_found_once_per_channel(self):
        """
        Requests on one channel ask the transport's layers once; another
        channel asks again; each request gets its own copy of the identity.
        """
        class Channel:
            pass

        class Request:
            def __init__(self, channel):
                self.channel = channel

        seen = []
        cert = {"subject": "CN=c", "issuer": "CN=ca"}
        self.patch(identity.PeerIdentities, "_identity", lambda _, request: seen.append(request) or dict(cert))
        peers = identity.PeerIdentities()
        one, two = Channel(), Channel()
        first, again, other = (peers.identify(Request(c)) for c in (one, one, two))
        self.assertEqual((first, again, other), (cert, cert, cert))
        self.assertEqual(len(seen), 2)
        first["subject"] = "changed"
        self.assertEqual(peers.identify(Request(one)), cert)


class StartErrorTests(unittest.TestCase):
    """
    Unusable material is reported at start, naming the file.
    """

    def setUp(self) -> None:
        self.dev = ts.copy_pki(self)

    def assertNamesFile(self, path: Path, **kwargs) -> str:
        """
        Building the server fails with a message naming C{path}.
        """
        error = self.assertRaises(TLSConfigError, make_tls, self.dev, **kwargs)
        self.assertIn(str(path), str(error))
        return str(error)

    def test_missing_certificate(self):
        """
        A missing certificate file is named.
        """
        self.dev.path("server.pem").unlink()
        self.assertIn("not found", self.assertNamesFile(self.dev.path("server.pem")))

    def test_missing_ca_bundle(self):
        """
        A missing CA bundle is named.
        """
        self.dev.path("ca.pem").unlink()
        self.assertNamesFile(self.dev.path("ca.pem"))

    def test_key_does_not_match(self):
        """
        A key that is not the certificate's is named.
        """
        replace(self.dev.path("server.key"), self.dev.path("client.key").read_bytes(), True)
        self.assertIn("does not match", self.assertNamesFile(self.dev.path("server.key")))

    def test_ca_bundle_without_certificates(self):
        """
        A CA bundle holding no certificate (here: a key) is named.
        """
        replace(self.dev.path("ca.pem"), self.dev.path("ca.key").read_bytes())
        self.assertIn("no PEM certificates", self.assertNamesFile(self.dev.path("ca.pem")))

    def test_expired_server_certificate_warns(self):
        """
        An expired server certificate starts, with a logged warning naming the file.
        """
        stale = pki.expired(ts.ca_issued(self.dev), "localhost", server=True, hosts=["localhost"])
        replace(self.dev.path("server.pem"), stale.cert_pem())
        replace(self.dev.path("server.key"), stale.key_pem(), True)
        events: list = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        server = make_tls(self.dev)
        self.assertEqual(len(server.material.warnings), 1)
        warned = [e for e in events if "expired" in e.get("problem", "")]
        self.assertEqual(len(warned), 1)
        self.assertIn(str(self.dev.path("server.pem")), warned[0]["problem"])

    def test_unknown_client_cert_mode(self):
        """
        Only "required" and "optional" are client-cert modes.
        """
        self.assertRaises(ValueError, make_tls, self.dev, client_cert="sometimes")


class ReloadTests(unittest.TestCase):
    """
    L{ReloadableServerTLS.reload}: new handshakes get the new material,
    open connections keep theirs, a broken file keeps the old material.
    """

    timeout = 20

    def setUp(self) -> None:
        self.dev = ts.copy_pki(self)
        self.server = make_tls(self.dev)
        self.port, self.app = ts.serve(self, self.server)

    @defer.inlineCallbacks
    def open_client(self, client="client"):
        """
        An open keep-alive connection that has made one request; closed at cleanup.
        """
        conn = yield ts.in_thread(ts.BlockingClient, self.port, ts.client_context(self.dev, client))
        self.addCleanup(ts.in_thread, conn.close)
        yield ts.in_thread(conn.get)
        return conn

    def new_server_cert(self) -> pki.Issued:
        """
        Write a new server certificate and key over the files.
        """
        fresh = pki.server_cert(ts.ca_issued(self.dev))
        replace(self.dev.path("server.pem"), fresh.cert_pem())
        replace(self.dev.path("server.key"), fresh.key_pem(), True)
        return fresh

    @defer.inlineCallbacks
    def test_new_certificate_for_new_connections(self):
        """
        After reload a new connection sees the new certificate; an open one
        still works.
        """
        old = yield self.open_client()
        fresh = self.new_server_cert()
        self.assertEqual((yield self.server.reload()), [])
        new = yield self.open_client()
        self.assertEqual(new.server_cert().serial_number, fresh.cert.serial_number)
        self.assertNotEqual(old.server_cert().serial_number, fresh.cert.serial_number)
        yield ts.in_thread(old.get)

    @defer.inlineCallbacks
    def test_new_ca_bundle(self):
        """
        After reloading a CA bundle without the old CA, new connections with
        the old client certificate are refused, while an open one is untouched.
        """
        old = yield self.open_client()
        replace(self.dev.path("ca.pem"), pki.make_ca("replacement CA").cert_pem())
        yield self.server.reload()
        stage, _ = yield ts.in_thread(ts.attempt, self.port, ts.client_context(self.dev))
        self.assertNotEqual(stage, "ok")
        yield ts.in_thread(old.get)

    @defer.inlineCallbacks
    def test_broken_file_keeps_old_material(self):
        """
        A reload with a broken key raises an error naming it; the server goes
        on with the old certificate.
        """
        before = yield self.open_client()
        replace(self.dev.path("server.key"), b"not a key", True)
        error = yield self.assertFailure(self.server.reload(), TLSConfigError)
        self.assertIn(str(self.dev.path("server.key")), str(error))
        after = yield self.open_client()
        self.assertEqual(after.server_cert(), before.server_cert())


class CancelledReloadTests(unittest.TestCase):
    """
    C{POST /__admin/reload-tls} whose client goes away before the files are
    read: the reload still replaces the material (or logs why not), and
    nothing is left unhandled.
    """

    def setUp(self) -> None:
        self.dev = ts.copy_pki(self)
        self.reads: list[tuple[defer.Deferred, object]] = []
        self.server = make_tls(self.dev, in_thread=self.held)
        self.before = self.server.material.cert

    def held(self, fn, *args, **kwargs) -> defer.Deferred:
        """
        Stand in for C{deferToThread}: C{fn} runs only at L{finish_reads}.
        """
        d = defer.Deferred()
        self.reads.append((d, lambda: fn(*args, **kwargs)))
        return d

    def finish_reads(self) -> None:
        """
        Run the held reads and fire their Deferreds, as the thread pool would.
        """
        for d, read in self.reads:
            try:
                result = read()
            except Exception:
                d.errback()
            else:
                d.callback(result)

    def new_server_cert(self) -> x509.Certificate:
        """
        Write a new server certificate and key over the files.
        """
        fresh = pki.server_cert(ts.ca_issued(self.dev))
        replace(self.dev.path("server.pem"), fresh.cert_pem())
        replace(self.dev.path("server.key"), fresh.key_pem(), True)
        return fresh.cert

    def test_cancelled_response_still_reloads(self):
        """
        Cancelling the response's Deferred leaves the reload running: the new
        certificate is in use once the reads finish.
        """
        fresh = self.new_server_cert()
        response = reload_response(self.server)
        response.cancel()
        self.failureResultOf(response, defer.CancelledError)
        self.finish_reads()
        self.assertEqual(self.server.material.cert, fresh)

    def test_cancelled_broken_reload_logged(self):
        """
        A broken file after the caller went away keeps the old material and
        is logged as a failed reload; nothing is an unhandled error.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        replace(self.dev.path("server.key"), b"not a key", True)
        response = reload_response(self.server)
        response.cancel()
        self.failureResultOf(response, defer.CancelledError)
        self.finish_reads()
        self.assertEqual(self.server.material.cert, self.before)
        self.assertTrue(any("TLS reload failed" in str(e.get("log_format")) for e in events))

    def test_uncancelled_response_still_answers(self):
        """
        Without a cancellation the response fires with the outcome as before.
        """
        self.new_server_cert()
        response = reload_response(self.server)
        self.assertNoResult(response)
        self.finish_reads()
        self.assertEqual(self.successResultOf(response), (200, {"reloaded": True, "warnings": []}))

    def test_detached_failures(self):
        """
        L{detached} passes a failure on while someone waits, and logs
        one that arrives after the wait was cancelled (never unhandled).
        """
        work = defer.Deferred()
        waiting = detached(work)
        work.errback(RuntimeError("disk on fire"))
        self.failureResultOf(waiting, RuntimeError)
        work = defer.Deferred()
        waiting = detached(work)
        waiting.cancel()
        self.assertNoResult(work)
        work.errback(RuntimeError("disk on fire"))
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIsNone(self.successResultOf(work))

    def test_client_disconnect_from_the_admin_route(self):
        """
        Through the admin route: a client that disconnects before the reload
        ends gets nothing, and the reload still happens.
        """
        fresh = self.new_server_cert()
        observed = observed_app(server_tls=self.server)
        conn = RawHTTP(observed.app).send("POST", "/__admin/reload-tls")
        self.assertEqual(len(self.reads), 1)
        conn.disconnect()
        self.finish_reads()
        self.assertEqual(self.server.material.cert, fresh)
        self.assertIsNone(conn.status)


class FaultTests(unittest.TestCase):
    """
    C{--tls-fault}: server certificates a correct client refuses.
    """

    timeout = 20

    def setUp(self) -> None:
        self.dev = ts.shared_pki()
        self.log = ts.HandshakeLog()

    def serve_fault(self, fault: str) -> int:
        """
        Serve with C{fault}; return the port.
        """
        server = make_tls(self.dev, fault=fault, fault_ca=ts.ca_issued(self.dev), on_handshake=self.log)
        return ts.serve(self, server)[0]

    @defer.inlineCallbacks
    def client_refuses(self, fault: str, verify_code: int):
        """
        The client refuses the server's certificate with OpenSSL's
        C{verify_code}; the server sees the client's alert.
        """
        port = self.serve_fault(fault)
        stage, error = yield ts.in_thread(ts.attempt, port, ts.client_context(self.dev))
        self.assertEqual(stage, "handshake")
        self.assertIsInstance(error, ssl.SSLCertVerificationError)
        self.assertEqual(error.verify_code, verify_code)
        self.assertEqual((yield self.log.wait()), [(False, "client-alert")])

    def test_expired_server_cert(self):
        """
        expired-server-cert: the client sees "certificate has expired" (10).
        """
        return self.client_refuses("expired-server-cert", 10)

    def test_untrusted_server_cert(self):
        """
        untrusted-server-cert: the chain ends in an unknown self-signed CA (19).
        """
        return self.client_refuses("untrusted-server-cert", 19)

    def test_wrong_host(self):
        """
        wrong-host: the client sees a hostname mismatch (62).
        """
        return self.client_refuses("wrong-host", 62)

    @defer.inlineCallbacks
    def test_wrong_host_is_valid_for_its_name(self):
        """
        The wrong-host certificate is otherwise valid: a client asking for
        its name gets through, so only the name is at fault.
        """
        port = self.serve_fault("wrong-host")
        stage, _ = yield ts.in_thread(ts.attempt, port, ts.client_context(self.dev), pki.WRONG_HOST)
        self.assertEqual(stage, "ok")

    def test_fault_needs_ca_key(self):
        """
        Faults signed by the real CA cannot be made without its key.
        """
        error = self.assertRaises(TLSConfigError, make_tls, self.dev, fault="wrong-host")
        self.assertIn("CA key", str(error))


class ALPNTests(unittest.TestCase):
    """
    ALPN-offering clients (curl, httpx) get http/1.1, whatever wraps the site.
    """

    timeout = 20

    @defer.inlineCallbacks
    def test_alpn_through_a_wrapping_factory(self):
        """
        A factory that does not forward ALPN (like a connection limiter)
        between TLS and the site does not break ALPN clients.
        """
        from twisted.protocols.policies import WrappingFactory

        dev = ts.shared_pki()
        port = ts.listen(self, WrappingFactory(Site(ts.Hello())), make_tls(dev))
        ctx = ts.client_context(dev)
        ctx.set_alpn_protocols(["h2", "http/1.1"])

        def negotiated() -> tuple[str, bytes]:
            client = ts.BlockingClient(port, ctx)
            try:
                return client.tls.selected_alpn_protocol(), client.get()
            finally:
                client.close()

        protocol, body = yield ts.in_thread(negotiated)
        self.assertEqual(protocol, "http/1.1")
        self.assertTrue(json.loads(body)["verified"])


class NameWarningTests(unittest.TestCase):
    """
    An existing server certificate that does not name the address clients
    are told to use is warned about at start.
    """

    def test_names(self) -> None:
        """The dev certificate names localhost and loopback; another host is warned about, naming the file."""
        cert = x509.load_pem_x509_certificate(ts.shared_pki().path("server.pem").read_bytes())
        self.assertTrue({"localhost", "127.0.0.1", "::1"} <= certificate_names(cert))
        self.assertEqual(name_warnings(cert, "certs/server.pem", "127.0.0.1"), [])
        [warning] = name_warnings(cert, "certs/server.pem", "127.0.0.2")
        self.assertIn("certs/server.pem is not for 127.0.0.2", warning)
