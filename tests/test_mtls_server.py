"""
The whole server (C{tap.Options} + C{makeService}) over mTLS: the official
C{openai} SDK, curl-equivalent requests, SIGHUP reload and the command-line
options of the HTTPS listener.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.tls import pki
from mockllm.tls.server import ReloadableServerTLS
from mockllm.http.listen import ListenerService
from tests import tls_support as ts


def options(*argv: str) -> tap.Options:
    """
    Parsed C{twist mockllm} options.
    """
    parsed = tap.Options()
    parsed.parseOptions(list(argv))
    return parsed


def start(testcase, *argv: str) -> dict[str, int]:
    """
    Build and start the server for C{argv} (ports 0) until the test ends;
    return the listening port of each listener by its description's first word.
    """
    service = tap.makeService(options("--http-port", "0", "--https-port", "0", *argv))
    listeners = [s for s in service if isinstance(s, ListenerService)]
    trackers = []
    for listener in listeners:
        listener.factory = ts.Tracker(listener.factory)
        trackers.append(listener.factory)
    service.startService()
    testcase.addCleanup(lambda: defer.gatherResults([t.close_all() for t in trackers]))
    testcase.addCleanup(service.stopService)
    return {s.description.split()[0]: s.port.getHost().port for s in listeners}


def sdk_models_and_chat(port: int, ctx: ssl.SSLContext) -> tuple[list[str], str]:
    """
    Blocking: list the models and make one chat completion with the openai SDK over mTLS.
    """
    from openai import DefaultHttpxClient, OpenAI

    http_client = DefaultHttpxClient(verify=ctx)
    client = OpenAI(base_url=f"https://localhost:{port}/v1", api_key="x",
                    http_client=http_client, max_retries=0)
    try:
        models = [m.id for m in client.models.list()]
        chat = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
        return models, chat.choices[0].message.content
    finally:
        client.close()


def sdk_refused(port: int, ctx: ssl.SSLContext) -> Exception:
    """
    Blocking: the exception the SDK raises for a call that cannot get through.
    """
    from openai import APIConnectionError

    try:
        sdk_models_and_chat(port, ctx)
    except APIConnectionError as e:
        return e
    raise AssertionError("the SDK call got through")


class RunningServer:
    """
    Mixin: the whole server on a copy of the dev PKI, both listeners on port 0.
    """

    timeout = 30

    def setUp(self) -> None:
        self.dev = ts.copy_pki(self)
        self.ports = start(self, "--certs-dir", str(self.dev.directory))


def root_cause(error: BaseException) -> BaseException:
    """
    The innermost exception of C{error}'s chain.
    """
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


class SDKTests(RunningServer, unittest.TestCase):
    """
    The openai SDK (httpx underneath) against the mTLS listener.
    """

    @defer.inlineCallbacks
    def test_sdk_with_client_certificate(self):
        """
        With the dev CA and client certificate the SDK lists models and
        gets a chat completion.
        """
        models, reply = yield ts.in_thread(
            sdk_models_and_chat, self.ports["HTTPS"], ts.client_context(self.dev)
        )
        self.assertIn("gpt-4o-mini", models)
        self.assertTrue(reply)

    @defer.inlineCallbacks
    def test_sdk_without_client_certificate(self):
        """
        Without a client certificate the SDK cannot connect.
        """
        error = yield ts.in_thread(sdk_refused, self.ports["HTTPS"], ts.client_context(self.dev, None))
        self.assertIn("CERTIFICATE_REQUIRED", repr(root_cause(error)))

    @defer.inlineCallbacks
    def test_plain_http_still_served(self):
        """
        The plain HTTP listener serves beside the mTLS one.
        """
        from twisted.internet import reactor
        from twisted.web.client import Agent, readBody

        response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{self.ports['HTTP']}/v1/models".encode())
        self.assertEqual(response.code, 200)
        yield readBody(response)


class DefaultPKITests(unittest.TestCase):
    """
    With no --tls-* option the server uses, or makes, the PKI in --certs-dir.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_generates_pki_in_empty_dir(self):
        """
        An empty certs dir gets a dev PKI (keys 0600) that a client can use at once.
        """
        certs = ts.temp_path(self)
        certs.mkdir()
        ports = start(self, "--certs-dir", str(certs), "--no-http")
        dev = pki.DevPKI(certs)
        self.assertEqual(oct(dev.path("client.key").stat().st_mode & 0o777), "0o600")
        stage, body = yield ts.in_thread(ts.attempt, ports["HTTPS"], ts.client_context(dev))
        self.assertEqual(stage, "ok")

    def test_announces_curl_command(self):
        """
        The HTTPS listener's start line holds the curl command with the real port.
        """
        certs = ts.temp_path(self)
        service = tap.makeService(options("--no-http", "--https-port", "0", "--certs-dir", str(certs)))
        listener = [s for s in service if isinstance(s, ListenerService)][0]
        service.startService()
        self.addCleanup(service.stopService)
        line = listener.announce(listener.port)
        self.assertIn(pki.DevPKI(certs).curl_command(listener.port.getHost().port), line)

    def test_start_error_names_file(self):
        """
        Explicit material that is missing stops the start with one line naming the file.
        """
        dev = ts.copy_pki(self)
        missing = str(dev.path("nope.pem"))
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options("--tls-cert", missing, "--tls-key", str(dev.path("server.key")),
                                    "--tls-ca", str(dev.path("ca.pem"))))
        self.assertIn(missing, str(caught.exception))


class SIGHUPTests(unittest.TestCase):
    """
    SIGHUP reloads the TLS material of a running server.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_sighup_reloads(self):
        """
        After SIGHUP new connections get the server certificate now on disk.
        """
        if not hasattr(signal, "SIGHUP"):
            raise unittest.SkipTest("no SIGHUP here")
        dev = ts.copy_pki(self)
        ports = start(self, "--certs-dir", str(dev.directory), "--no-http")
        fresh = pki.server_cert(ts.ca_issued(dev))
        for name, data, private in (("server.pem", fresh.cert_pem(), False), ("server.key", fresh.key_pem(), True)):
            dev.path(name).unlink()
            pki.write_new(dev.path(name), data, private)
        reloaded = ts.HandshakeLog()

        original = ReloadableServerTLS._use

        def use(self_, material):
            warnings = original(self_, material)
            reloaded(True, "reloaded")
            return warnings

        self.patch(ReloadableServerTLS, "_use", use)
        os.kill(os.getpid(), signal.SIGHUP)
        yield reloaded.wait()
        client = yield ts.in_thread(ts.BlockingClient, ports["HTTPS"], ts.client_context(dev))
        self.addCleanup(ts.in_thread, client.close)
        self.assertEqual(client.server_cert().serial_number, fresh.cert.serial_number)

    def test_handler_restored_on_stop(self):
        """
        Stopping the server puts the previous SIGHUP handler back.
        """
        if not hasattr(signal, "SIGHUP"):
            raise unittest.SkipTest("no SIGHUP here")
        before = signal.getsignal(signal.SIGHUP)
        service = tap.makeService(options("--no-http", "--https-port", "0",
                                          "--certs-dir", str(ts.copy_pki(self).directory)))
        service.startService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), before)
        d = service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)
        return d


class OptionsTests(unittest.TestCase):
    """
    The HTTPS options of C{twist mockllm}.
    """

    def test_defaults(self):
        """
        By default: HTTPS on 8443, client certificates required, ./certs.
        """
        config = tap.config_from_options(options())
        self.assertEqual(config.server.port, 8443)
        self.assertTrue(config.tls.require_client_cert)
        self.assertEqual(config.tls.certs_dir, "certs")
        self.assertIsNone(config.tls.fault)

    def test_values(self):
        """
        Each option lands in the configuration.
        """
        config = tap.config_from_options(options(
            "--https-port", "9443", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem",
            "--certs-dir", "elsewhere", "--client-cert", "optional", "--tls-fault", "wrong-host"))
        self.assertEqual(config.server.port, 9443)
        self.assertEqual((config.tls.cert_path, config.tls.key_path, config.tls.ca_cert_path),
                         ("c.pem", "k.pem", ("ca.pem",)))
        self.assertFalse(config.tls.require_client_cert)
        self.assertEqual((config.tls.certs_dir, config.tls.fault), ("elsewhere", "wrong-host"))

    def test_several_cas(self):
        """
        --tls-ca given twice trusts both bundles, in order.
        """
        config = tap.config_from_options(options("--tls-ca", "a.pem", "--tls-ca", "b.pem"))
        self.assertEqual(config.tls.ca_cert_path, ("a.pem", "b.pem"))

    def test_no_https(self):
        """
        --no-https removes the listener; with --no-http too, nothing is left.
        """
        self.assertIsNone(tap.config_from_options(options("--no-https")).server.port)
        self.assertRaises(usage.UsageError, options, "--no-https", "--no-http")

    def test_bad_values(self):
        """
        Bad values are usage errors.
        """
        for argv in (
            ["--client-cert", "sometimes"],
            ["--tls-fault", "slow"],
            ["--https-port", "99999"],
            ["--tls-cert", "c.pem"],
            ["--no-https", "--tls-fault", "wrong-host"],
        ):
            self.assertRaises(usage.UsageError, options, *argv)


def request(port: int, ctx: ssl.SSLContext | None, method: str, path: str) -> tuple[int, dict]:
    """
    Blocking: one request with the stdlib (HTTPS with C{ctx}, plain HTTP if
    None); the status and JSON body.
    """
    import http.client

    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


class AdminTests(RunningServer, unittest.TestCase):
    """
    C{GET /__admin/whoami} and C{POST /__admin/reload-tls} on the running server.
    """

    @defer.inlineCallbacks
    def test_whoami_over_mtls(self):
        """
        whoami shows the client certificate the server verified.
        """
        status, seen = yield ts.in_thread(request, self.ports["HTTPS"], ts.client_context(self.dev),
                                          "GET", "/__admin/whoami")
        self.assertEqual(status, 200)
        self.assertEqual(seen["subject"], "CN=mockllm-client,O=mockllm development")
        self.assertEqual(seen["issuer"], "CN=mockllm development CA,O=mockllm development")
        self.assertEqual(seen["tls_version"], "TLSv1.3")
        self.assertEqual(set(seen), {"subject", "issuer", "serial", "fingerprint_sha256", "tls_version", "cipher"})

    @defer.inlineCallbacks
    def test_whoami_over_plain_http(self):
        """
        Over plain HTTP whoami has the same fields, all null.
        """
        status, seen = yield ts.in_thread(request, self.ports["HTTP"], None, "GET", "/__admin/whoami")
        self.assertEqual(status, 200)
        self.assertEqual(set(seen.values()), {None})
        self.assertEqual(len(seen), 6)

    @defer.inlineCallbacks
    def test_reload(self):
        """
        reload-tls answers 200 and new connections get the new certificate.
        """
        fresh = pki.server_cert(ts.ca_issued(self.dev))
        for name, data, private in (("server.pem", fresh.cert_pem(), False), ("server.key", fresh.key_pem(), True)):
            self.dev.path(name).unlink()
            pki.write_new(self.dev.path(name), data, private)
        status, body = yield ts.in_thread(request, self.ports["HTTP"], None, "POST", "/__admin/reload-tls")
        self.assertEqual((status, body), (200, {"reloaded": True, "warnings": []}))
        client = yield ts.in_thread(ts.BlockingClient, self.ports["HTTPS"], ts.client_context(self.dev))
        self.addCleanup(ts.in_thread, client.close)
        self.assertEqual(client.server_cert().serial_number, fresh.cert.serial_number)

    @defer.inlineCallbacks
    def test_broken_reload(self):
        """
        A broken CA bundle: 500 naming the file, and the server goes on as before.
        """
        ctx = ts.client_context(self.dev)
        self.dev.path("ca.pem").write_bytes(b"garbage")
        status, body = yield ts.in_thread(request, self.ports["HTTP"], None, "POST", "/__admin/reload-tls")
        self.assertEqual(status, 500)
        self.assertIn(str(self.dev.path("ca.pem")), body["error"]["message"])
        self.assertEqual((body["error"]["code"], body["reloaded"]), ("tls_reload_failed", False))
        stage, _ = yield ts.in_thread(ts.attempt, self.ports["HTTPS"], ctx)
        self.assertEqual(stage, "ok")


class NoHTTPSAdminTests(unittest.TestCase):
    """
    reload-tls on a server without the HTTPS listener.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_reload_without_https(self):
        """
        Without an HTTPS listener there is nothing to reload: 404.
        """
        ports = start(self, "--no-https")
        status, body = yield ts.in_thread(request, ports["HTTP"], None, "POST", "/__admin/reload-tls")
        self.assertEqual(status, 404)
        self.assertFalse(body["reloaded"])


class HandshakeReportTests(unittest.TestCase):
    """
    What the whole server reports of each handshake: the metric, and one console line per refusal.
    """

    timeout = 30

    def setUp(self) -> None:
        from twisted.logger import globalLogPublisher

        self.dev = ts.copy_pki(self)
        self.lines: list[str] = []

        def observe(event) -> None:
            from twisted.logger import formatEvent

            if event.get("log_namespace") == "mockllm.http.connlimit.ConnectionLimit":
                self.lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def handshakes(self, port: int) -> dict:
        """Blocking: the handshake counters from ``/metrics`` on the plain port."""
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        found = {}
        for line in text.splitlines():
            if line.startswith("mockllm_tls_handshakes_total{"):
                labels, value = line.split("} ")
                found[labels.split("{")[1]] = float(value)
        return found

    @defer.inlineCallbacks
    def wait_for(self, port: int, key: str):
        """The counters, once ``key`` has been counted (the close is seen a moment after the client's)."""
        for _ in range(100):
            counts = yield ts.in_thread(self.handshakes, port)
            if key in counts:
                return counts
            yield deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"{key} never counted: {counts}")

    @defer.inlineCallbacks
    def test_refusal_has_a_console_line(self):
        """
        A client without a certificate is counted as refused and gets one line with its address and why.
        """
        ports = start(self, "--certs-dir", str(self.dev.directory))
        kind, _ = yield ts.in_thread(ts.attempt, ports["HTTPS"], ts.client_context(self.dev, client=None))
        self.assertIn(kind, ("handshake", "request"))
        yield self.wait_for(ports["HTTP"], 'reason="no-certificate",result="refused"')
        (line,) = [line for line in self.lines if "no client certificate" in line]
        self.assertIn("TLS handshake refused from 127.0.0.1:", line)

    @defer.inlineCallbacks
    def test_wrong_host_refused_after_handshake(self):
        """
        ``--tls-fault wrong-host``: a client that refuses the name after the handshake and closes is
        counted as refused (closed-without-request), not accepted; a request that gets through is accepted.
        """
        ports = start(self, "--certs-dir", str(self.dev.directory), "--tls-fault", "wrong-host")

        def handshake_then_close() -> None:
            ctx = ts.client_context(self.dev)
            ctx.check_hostname = False  # as curl does: the handshake completes, then the name is checked
            with socket.create_connection(("127.0.0.1", ports["HTTPS"]), timeout=10) as sock:
                with ctx.wrap_socket(sock, server_hostname="localhost"):
                    pass

        yield ts.in_thread(handshake_then_close)
        counts = yield self.wait_for(ports["HTTP"], 'reason="closed-without-request",result="refused"')
        self.assertNotIn('reason="ok",result="accepted"', counts)
        self.assertTrue(any("closed after the handshake without a request" in line and "CN=mockllm-client" in line
                            for line in self.lines), self.lines)
        ctx = ts.client_context(self.dev)
        ctx.check_hostname = False
        status, _ = yield ts.in_thread(request, ports["HTTPS"], ctx, "GET", "/v1/models")
        self.assertEqual(status, 200)
        yield self.wait_for(ports["HTTP"], 'reason="ok",result="accepted"')
