"""
The ``mockllm.testing`` kit under trial and in memory: the handle's journal, reset and scenario
calls, ``serve``'s cleanup, mTLS material, and the promise that loading the kit loads no reactor.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.testing import ServerOptions, memory, serve
from mockllm.testing.running import start
from tests.support import CHAT_BODY, treq_client, validate

ROOT = Path(__file__).resolve().parent.parent


def _flush_until(clock, http, done: Deferred) -> None:
    """Advance ``clock`` until ``done`` fires (a stream's pacing)."""
    for _ in range(200):
        if done.called:
            return
        clock.advance(0.05)
        http.flush()


class LightImportTests(unittest.TestCase):
    """Loading the kit (and so the pytest plugin) installs no reactor."""

    def test_no_reactor_at_import(self) -> None:
        """After importing the plugin and the package, sys.modules has no twisted.internet.reactor."""
        code = (
            "import sys, mockllm.testing.pytest_plugin, mockllm.testing; "
            "print(sorted(m for m in ('twisted.internet.reactor', 'klein', 'mockllm.server') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT))
        self.assertEqual(out.stdout.strip(), "[]")


class MemoryHandleTests(unittest.TestCase):
    """The handle of an in-memory server: journal, filters, reset, scenarios."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.http, self.server = memory(self.clock, scenario="flaky", params={"fail_first": 1})

    def post(self, query: str = "", **headers: str):
        done = Deferred.fromCoroutine(self._post(query, headers))
        _flush_until(self.clock, self.http, done)
        return self.successResultOf(done)

    async def _post(self, query, headers):
        response = await self.http.post("http://mockllm.invalid/v1/chat/completions" + query, json=CHAT_BODY,
                                        headers=headers)
        return response.code, await response.json()

    def test_requests_and_filters(self) -> None:
        """requests() lists the journal with the admin API's filters (status, class, key, limit)."""
        self.assertEqual(self.post()[0], 503)
        code, body = self.post()
        self.assertEqual(code, 200)
        validate("CreateChatCompletionResponse", body)
        self.post("?fail=429", **{"X-Mock-Key": "other"})
        self.assertEqual([r["status"] for r in self.server.requests()], [503, 200, 429])
        self.assertEqual(len(self.server.requests(status="5xx")), 1)
        self.assertEqual([r["status"] for r in self.server.requests(key="other")], [429])
        self.assertEqual([r["status"] for r in self.server.requests(limit=1)], [429])
        self.assertEqual(self.server.requests(path="/v1/models"), [])

    def test_bad_filter(self) -> None:
        """An unknown or malformed filter is a ValueError with the admin API's message."""
        with self.assertRaises(ValueError) as caught:
            self.server.requests(statuz=200)
        self.assertIn("Unrecognized request argument supplied: statuz", str(caught.exception))
        with self.assertRaises(ValueError):
            self.server.requests(status="abc")

    def test_records_are_copies(self) -> None:
        """Changing a record returned changes nothing in the journal."""
        self.post()
        self.server.requests()[0]["status"] = 999
        self.assertEqual(self.server.requests()[0]["status"], 503)

    def test_reset(self) -> None:
        """reset() empties the journal and restarts flaky's count."""
        self.post()
        self.server.reset()
        self.assertEqual(self.server.requests(), [])
        self.assertEqual(self.post()[0], 503)

    def test_set_scenario(self) -> None:
        """set_scenario switches with parameters and describes the result; an unknown name is refused."""
        described = self.server.set_scenario("flaky", fail_first=0)
        self.assertEqual((described["name"], described["parameters"]["fail_first"]), ("flaky", 0))
        self.assertEqual(self.post()[0], 200)
        with self.assertRaises(ValueError) as caught:
            self.server.set_scenario("no-such")
        self.assertIn("flaky", str(caught.exception))

    def test_clock_drives_delays(self) -> None:
        """A delayed answer waits for the test's clock; the journal's times are the clock's."""
        done = Deferred.fromCoroutine(self._post("?delay=500", {"X-Mock-Fail": "none"}))
        self.clock.advance(0.499)
        self.http.flush()
        self.assertNoResult(done)
        self.clock.advance(0.001)
        self.http.flush()
        self.assertEqual(self.successResultOf(done)[0], 200)
        (record,) = self.server.requests()
        self.assertEqual(record["timings"]["total_ms"], 500.0)

    def test_no_socket(self) -> None:
        """An in-memory server has no socket for a real client, nor TLS."""
        with self.assertRaises(RuntimeError):
            self.server.openai_client()
        with self.assertRaises(ValueError):
            memory(Clock(), https=True)

    def test_unknown_option(self) -> None:
        """An unknown option is a TypeError naming it."""
        with self.assertRaises(TypeError) as caught:
            memory(Clock(), scenaro="flaky")
        self.assertIn("scenaro", str(caught.exception))


class _Held(Protocol):
    """A client connection that only notes when it is closed."""

    def __init__(self) -> None:
        self.lost: Deferred = Deferred()

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


class ServeTests(unittest.TestCase):
    """``serve`` on the running reactor, and how a server stops."""

    async def test_serves_treq_and_the_sdk(self) -> None:
        """treq and the SDK (in a thread) both reach it; url ends in /v1."""
        server = await serve(self, seed=3)
        self.assertTrue(server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1"))
        response = await treq_client(self).get(server.url + "/models")
        self.assertEqual(validate("ListModelsResponse", await response.json())["object"], "list")
        models = await deferToThread(lambda: [m.id for m in server.openai_client().models.list()])
        self.assertIn("gpt-4o-mini", models)
        self.assertIsNone(server.https_url)

    async def test_stop_cuts_connections_and_closes_the_port(self) -> None:
        """Stopping cuts an idle keep-alive connection and stops listening."""
        server, stop = start(ServerOptions(), reactor)
        port = int(server.url.split(":")[2].split("/")[0])
        held = _Held()
        factory = ClientFactory.forProtocol(lambda: held)
        connected = Deferred()
        reactor.connectTCP("127.0.0.1", port, _Notify(factory, connected))
        await connected
        await stop()
        await held.lost
        with self.assertRaises(ConnectionRefusedError):
            await treq.get(f"http://127.0.0.1:{port}/health", reactor=reactor)

    async def test_https_material(self) -> None:
        """https=True: the CA and client pair exist, mTLS works with them, no certificate is refused."""
        server = await serve(self, https=True)
        for path in (server.ca_path, server.client_cert_path, server.client_key_path):
            self.assertTrue(os.path.exists(path), path)
        self.assertTrue(server.https_url.startswith("https://127.0.0.1:"))

        def over_tls(with_cert: bool):
            import httpx
            context = ssl.create_default_context(cafile=server.ca_path)
            if with_cert:
                context.load_cert_chain(server.client_cert_path, server.client_key_path)
            with httpx.Client(verify=context) as client:
                return client.get(server.https_url + "/models").status_code

        self.assertEqual(await deferToThread(over_tls, True), 200)
        with self.assertRaises(Exception):
            await deferToThread(over_tls, False)
        self.assertEqual(await deferToThread(lambda: server.openai_client().models.list().data[0].object), "model")
        with self.assertRaises(ValueError):
            (await serve(self)).openai_client(https=True)

    async def test_pki_removed_after_stop(self) -> None:
        """Each https server has its own PKI, removed when it stops."""
        first, stop_first = start(ServerOptions(https=True), reactor)
        second, stop_second = start(ServerOptions(https=True), reactor)
        self.assertNotEqual(Path(first.ca_path).read_bytes(), Path(second.ca_path).read_bytes())
        await stop_first()
        await stop_second()
        self.assertFalse(os.path.exists(first.ca_path))

    async def test_config_file(self) -> None:
        """config= reads a TOML file as --config does: its models and its scenarios."""
        server = await serve(self, config=str(ROOT / "tests" / "testing_kit.toml"), scenario="kit-flaky")
        http = treq_client(self)
        response = await http.get(server.url + "/models")
        self.assertEqual([m["id"] for m in (await response.json())["data"]], ["kit-model"])
        body = json.dumps({**CHAT_BODY, "model": "kit-model"}).encode()
        codes = []
        for _ in range(2):
            response = await http.post(server.url + "/chat/completions", body, headers={"Content-Type": "application/json"})
            await response.content()
            codes.append(response.code)
        self.assertEqual(codes, [503, 200])


class _Notify(ClientFactory):
    """Wraps a factory to fire ``connected`` once the connection is made."""

    def __init__(self, inner: ClientFactory, connected: Deferred) -> None:
        self.inner = inner
        self.connected = connected

    def buildProtocol(self, addr):
        protocol = self.inner.buildProtocol(addr)
        self.connected.callback(protocol)
        return protocol
