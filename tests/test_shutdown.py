"""
SIGTERM on the real ``twist mockllm``: it stops accepting, lets requests in flight finish
within ``--shutdown-grace-s``, ends waiting answers at once, writes the request log and
exits 0.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial import unittest
from twisted.web.client import ResponseFailed

from tests.processes import spawn
from tests.support import CHAT_BODY, parse_sse, treq_client, validate
from tests.test_hardening import Raw, chat_request

PATH = "/v1/chat/completions"


def read_lines(path: str) -> list[dict]:
    """The request log's records."""
    with open(path) as f:
        return [json.loads(line) for line in f]


class ShutdownTests(unittest.TestCase):
    """``kill -TERM`` on a serving ``twist mockllm``."""

    timeout = 60

    def start(self, *args: str):
        """A server on a free port with a request log; its URL's host and port are kept."""
        self.cwd = self.mktemp()
        os.makedirs(self.cwd)
        return spawn(self, ["--no-https", "--http-port", "0", "--request-log", "requests.jsonl", *args], self.cwd)

    def log_lines(self) -> list[dict]:
        """The request log's records."""
        return read_lines(os.path.join(self.cwd, "requests.jsonl"))

    async def refused(self, url: str) -> bool:
        """Whether a new connection to ``url`` is refused (or reset: it was queued as the listener closed).

        One that is accepted is closed again."""
        parts = urlsplit(url)
        try:
            client = await connectProtocol(TCP4ClientEndpoint(reactor, parts.hostname, parts.port), Protocol())
        except ConnectError:
            return True
        client.transport.abortConnection()
        return False

    async def test_request_in_flight_completes(self) -> None:
        """A stream in flight at SIGTERM goes out whole while new connections are refused; exit 0; logged."""
        server = self.start("--stream-interval-ms", "100", "--shutdown-grace-s", "20")
        url = await server.ready
        streaming = await treq_client(self).post(url + PATH, json={**CHAT_BODY, "stream": True})
        self.assertEqual(streaming.code, 200)
        body = streaming.content()
        started = reactor.seconds()
        ended = server.stop()
        refused = False
        for _ in range(100):
            refused = await self.refused(url)
            if refused or body.called:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(refused, "a new connection was accepted while the server was stopping")
        self.assertFalse(body.called, "the stream ended before new connections were refused")
        events = parse_sse(await body)
        self.assertEqual(events[-1], "[DONE]")
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))
        self.assertEqual(await ended, 0)
        self.assertLess(reactor.seconds() - started, 20)
        self.assertEqual([(r["path"], r["outcome"]) for r in self.log_lines()], [(PATH, "completed")])
        self.assertIn(b"SIGTERM: stopping", server.output)

    async def test_waiting_answers_end_at_once(self) -> None:
        """A ``fail=timeout`` hold and a long delay in flight: the process exits 0 at once, both logged as cut."""
        server = self.start("--shutdown-grace-s", "20")
        url = await server.ready
        parts = urlsplit(url)
        clients = []
        for query in ("?fail=timeout", "?delay=60000"):
            client = await connectProtocol(TCP4ClientEndpoint(reactor, parts.hostname, parts.port), Raw())
            client.transport.write(chat_request(query))
            clients.append(client)
        await deferLater(reactor, 0.5, lambda: None)  # both requests have arrived and are waiting
        started = reactor.seconds()
        self.assertEqual(await server.stop(), 0)
        self.assertLess(reactor.seconds() - started, 3)
        for client in clients:
            await client.ended
            self.assertEqual(client.data, b"")
        self.assertEqual(sorted((r["query"], r["outcome"]) for r in self.log_lines()),
                         [("delay=60000", "server-shutdown"), ("fail=timeout", "server-shutdown")])

    async def test_grace_ends_a_long_stream(self) -> None:
        """A stream longer than the grace (0.5 s) is cut when it ends; the process exits 0 soon after."""
        server = self.start("--stream-interval-ms", "1000", "--shutdown-grace-s", "0.5")
        url = await server.ready
        streaming = await treq_client(self).post(url + PATH, json={**CHAT_BODY, "stream": True})
        body = streaming.content()
        started = reactor.seconds()
        self.assertEqual(await server.stop(), 0)
        self.assertLess(reactor.seconds() - started, 3)
        await self.assertFailure(body, ResponseFailed)  # the chunked body never ended
        self.assertEqual([(r["path"], r["outcome"]) for r in self.log_lines()], [(PATH, "server-shutdown")])
