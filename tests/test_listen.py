"""
Listening the Twisted way: ``--listen`` endpoint strings (``tcp:``, ``unix:``, ``mtls:``),
the ``mtls:`` parser plugin, start-up failures naming the listener, and the ``Content-Length``
413 given before any body is read.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.http.listen import ListenerService
from mockllm.startup import StartFailed
from mockllm.tls.endpoint import MTLSServerEndpoint
from tests import tls_support as ts
from tests.observe_support import observed_app
from tests.processes import spawn
from tests.support import CHAT_BODY, listen, validate


def options(*argv: str) -> tap.Options:
    """Parsed options."""
    parsed = tap.Options()
    parsed.parseOptions(list(argv))
    return parsed


def started(testcase, *argv: str) -> list[ListenerService]:
    """The listeners of ``twist mockllm ARGV``, started until the test ends."""
    service = tap.makeService(options(*argv))
    service.privilegedStartService()
    service.startService()
    testcase.addCleanup(service.stopService)
    return [s for s in service if isinstance(s, ListenerService)]


def blocking_get(port: int, ctx: ssl.SSLContext, path: str = "/v1/models") -> tuple[int, bytes]:
    """Blocking: GET ``path`` over TLS; the status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class ListenOptionTests(unittest.TestCase):
    """``--listen`` replaces the default listeners and may be repeated."""

    def test_only_the_given_endpoints(self) -> None:
        """With --listen, only the endpoints given are served (the shorthand ports only if given too)."""
        config = tap.config_from_options(options("--listen", "tcp:0:interface=127.0.0.1"))
        found = tap.listeners(options("--listen", "tcp:0:interface=127.0.0.1"), config)
        self.assertEqual([listener.description for listener in found], ["tcp:0:interface=127.0.0.1"])
        both = options("--listen", "tcp:0", "--listen", "unix:x.sock", "--http-port", "0")
        found = tap.listeners(both, tap.config_from_options(both))
        self.assertEqual([listener.description for listener in found][1:], ["tcp:0", "unix:x.sock"])
        self.assertTrue(found[0].description.startswith("tcp:0:interface=127.0.0.1"))

    def test_shorthand_is_an_endpoint_string(self) -> None:
        """The default listeners are the endpoint strings the shorthand options stand for."""
        found = tap.listeners(options(), tap.config_from_options(options()))
        self.assertEqual(
            [listener.description for listener in found],
            [
                "tcp:8001:interface=127.0.0.1:backlog=1024",
                "mtls:8443:interface=127.0.0.1:backlog=1024:certsDir=certs:clientCert=required",
            ],
        )

    def test_empty_listen_refused(self) -> None:
        """An empty --listen is a usage error."""
        self.assertRaises(usage.UsageError, options, "--listen", " ")

    def test_unix_socket_serves(self) -> None:
        """``--listen unix:PATH`` serves the whole API on a UNIX socket."""
        directory = tempfile.mkdtemp(prefix="mockllm-")  # short: AF_UNIX paths are limited to ~100 bytes
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "api.sock")
        (listener,) = started(self, "--listen", f"unix:{path}", "--no-https")
        self.assertEqual(listener.port.getHost().name, path.encode())
        return self._curl_unix(path)

    @defer.inlineCallbacks
    def _curl_unix(self, path: str):
        out, err, code = yield getProcessOutputAndValue(
            "curl", ["-s", "--unix-socket", path, "-H", "Content-Type: application/json",
                     "-d", json.dumps(CHAT_BODY), "http://localhost/v1/chat/completions"])
        self.assertEqual(code, 0, err)
        validate("CreateChatCompletionResponse", json.loads(out))


class MTLSEndpointTests(unittest.TestCase):
    """The ``mtls:`` endpoint string, through Twisted's own ``serverFromString``."""

    timeout = 30

    def test_plugin_found_by_twisted(self) -> None:
        """``serverFromString`` finds the ``mtls:`` parser plugin and builds an mTLS endpoint from the dev PKI."""
        dev = ts.copy_pki(self)
        endpoint = serverFromString(reactor, f"mtls:0:interface=127.0.0.1:certsDir={dev.directory}")
        self.assertIsInstance(endpoint, MTLSServerEndpoint)
        self.assertEqual(endpoint.tls.ca_paths, (dev.path("ca.pem"),))

    def test_bad_options(self) -> None:
        """A bad port, option or value is a ValueError naming it."""
        for description, named in [
            ("mtls:99999", "port"),
            ("mtls:0:colour=blue", "colour"),
            ("mtls:0:clientCert=sometimes", "clientCert"),
            ("mtls:0:certKey=a.pem", "privateKey"),
            ("mtls:0:fault=nope", "fault"),
        ]:
            with self.assertRaises(ValueError) as caught:
                serverFromString(reactor, description)
            self.assertIn(named, str(caught.exception))

    @defer.inlineCallbacks
    def test_own_files_serve_and_verify(self) -> None:
        """``mtls:PORT:certKey=..:privateKey=..:caCerts=..`` serves with those files and refuses clients without a certificate."""
        dev = ts.copy_pki(self)
        description = (f"mtls:0:interface=127.0.0.1:certKey={dev.path('server.pem')}:"
                       f"privateKey={dev.path('server.key')}:caCerts={dev.path('ca.pem')}")
        (listener,) = started(self, "--listen", description, "--no-https")
        port = listener.port.getHost().port
        status, body = yield ts.in_thread(blocking_get, port, ts.client_context(dev))
        self.assertEqual(status, 200)
        validate("ListModelsResponse", json.loads(body))
        kind, _ = yield ts.in_thread(ts.attempt, port, ts.client_context(dev, client=None))
        self.assertIn(kind, ("handshake", "request"))

    def test_bad_endpoint_stops_the_start(self) -> None:
        """An endpoint that cannot be built stops the start with one line naming it."""
        with self.assertRaises(StartFailed) as caught:
            tap.makeService(options("--listen", "mtls:0:colour=blue"))
        self.assertEqual(str(caught.exception).count("\n"), 0)
        self.assertIn("mtls:0:colour=blue", str(caught.exception))

    @defer.inlineCallbacks
    def test_real_process_exits_with_one_line(self) -> None:
        """``twist mockllm --listen`` with an unusable endpoint exits 1 with one line naming it."""
        directory = Path(self.mktemp())
        directory.mkdir()
        server = spawn(self, ["--listen", "mtls:0:colour=blue"], str(directory))
        code = yield server.ended
        self.assertEqual(code, 1)
        lines = [line for line in server.output.decode().splitlines() if "colour" in line]
        self.assertEqual(len(lines), 1, server.output)


class BodyLimitTests(unittest.TestCase):
    """A ``Content-Length`` over ``--max-body-bytes`` is refused from the headers alone."""

    timeout = 20

    def setUp(self) -> None:
        self.o = observed_app()
        self.port = int(listen(self, self.o.app).rpartition(":")[2])

    def exchange(self, length: int, send_body: bytes = b"") -> tuple[bytes, float]:
        """Blocking: send headers declaring ``length`` (and ``send_body``); read to EOF; return it and the time taken."""
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (length, send_body)
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data, time.monotonic() - began

    @defer.inlineCallbacks
    def test_a_gigabyte_is_refused_at_once(self) -> None:
        """1 GB declared, nothing sent: an OpenAI-shaped 413 at once, then the server closes; journaled as refused."""
        data, took = yield ts.in_thread(self.exchange, 10**9)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 "), head)
        self.assertIn(b"Connection: close", head)
        error = validate("ErrorResponse", json.loads(body))["error"]
        self.assertEqual(error["code"], "request_too_large")
        self.assertLess(took, 2.0)
        (record,) = self.o.journal.query()
        self.assertEqual((record["status"], record["outcome"], record["path"]), (413, "refused", "/v1/chat/completions"))

    @defer.inlineCallbacks
    def test_body_sent_anyway_is_dropped(self) -> None:
        """A client that sends part of its body anyway still reads the whole 413."""
        data, _ = yield ts.in_thread(self.exchange, 10**9, b"x" * 200_000)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "))
        self.assertEqual(json.loads(data.partition(b"\r\n\r\n")[2])["error"]["code"], "request_too_large")

    @defer.inlineCallbacks
    def test_within_the_limit_is_answered(self) -> None:
        """A body within the limit is answered as usual on the same server."""
        body = json.dumps(CHAT_BODY).encode()
        data, _ = yield ts.in_thread(self.exchange, len(body), body + b"")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])


if sys.platform == "win32":  # pragma: no cover - UNIX sockets
    del ListenOptionTests.test_unix_socket_serves
