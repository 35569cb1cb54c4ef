"""
The seed document's "Definition of Done", tried with curl as its "Testing
Commands" do, against a server on a real socket.
"""

from __future__ import annotations

import json
import shutil
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from mockllm.http.routes import MockLLM
from mockllm.config import Config, ResponsesConfig
from tests.support import listen, parse_sse, validate

BODY = '{"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}'
CURL = shutil.which("curl") or "/usr/bin/curl"


class Finished:
    """An observer whose :attr:`next` fires with the next exchange that ends."""

    def __init__(self) -> None:
        self.next: Deferred = Deferred()

    def exchange_started(self, exchange) -> None:
        """Nothing to do."""

    def exchange_finished(self, exchange) -> None:
        """Fire :attr:`next`."""
        done, self.next = self.next, Deferred()
        done.callback(exchange)


class SeedDefinitionOfDoneTests(unittest.TestCase):
    """Each item of the seed's Definition of Done, with curl."""

    timeout = 30

    def setUp(self) -> None:
        self.finished = Finished()
        app = MockLLM(Config(responses=ResponsesConfig(stream_interval_ms=5)), reactor, observers=[self.finished])
        self.base = listen(self, app)

    async def curl(self, query: str = "", *extra: str) -> tuple[int, bytes]:
        """POST the seed's body with curl; return the status and the body."""
        args = ["-s", "-N", "-X", "POST", f"{self.base}/v1/chat/completions{query}",
                "-H", "Content-Type: application/json", "-d", BODY, "-w", "\n%{http_code}", *extra]
        out, err, code = await getProcessOutputAndValue(CURL, args)
        self.assertEqual(code, 0, err)
        body, _, status = out.rpartition(b"\n")
        return int(status), body

    async def test_happy_path(self) -> None:
        """A valid chat.completion in OpenAI's format, model echoed."""
        status, body = await self.curl()
        self.assertEqual(status, 200)
        self.assertEqual(validate("CreateChatCompletionResponse", json.loads(body))["model"], "gpt-4")

    async def test_delay(self) -> None:
        """``?delay=300`` answers no sooner than 300 ms later."""
        began = time.monotonic()
        status, _ = await self.curl("?delay=300")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - began, 0.3)

    async def test_rate_limit(self) -> None:
        """``?fail=429`` is the seed's rate-limit error."""
        status, body = await self.curl("?fail=429")
        self.assertEqual(status, 429)
        self.assertEqual(validate("ErrorResponse", json.loads(body))["error"]["type"], "rate_limit_error")

    async def test_server_error(self) -> None:
        """``?fail=500`` is the seed's server error."""
        status, body = await self.curl("?fail=500")
        self.assertEqual(status, 500)
        self.assertEqual(validate("ErrorResponse", json.loads(body))["error"]["code"], "internal_error")

    async def test_stream(self) -> None:
        """``?stream=true`` gives SSE chunks and ``[DONE]``."""
        status, body = await self.curl("?stream=true")
        self.assertEqual(status, 200)
        events = parse_sse(body)
        self.assertEqual(events[-1], "[DONE]")
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))

    async def test_fail_chunk(self) -> None:
        """``?fail_chunk=3`` breaks the third event and ends the stream without ``[DONE]``."""
        status, body = await self.curl("?stream=true&fail_chunk=3")
        self.assertEqual(status, 200)
        events = parse_sse(body)
        self.assertEqual(len(events), 3)
        self.assertRaises(ValueError, json.loads, events[2])

    async def test_timeout_seen_by_a_client_timeout(self) -> None:
        """``?fail=timeout`` sends nothing: curl's own 1 s limit expires first (exit 28), and the
        server, seeing the client go, drops the 30 s hold (no timer is left: trial would fail)."""
        finished = self.finished.next
        args = ["-s", "-m", "1", "-X", "POST", f"{self.base}/v1/chat/completions?fail=timeout", "-d", BODY]
        out, _, code = await getProcessOutputAndValue(CURL, args)
        self.assertEqual((code, out), (28, b""))
        exchange = await finished
        self.assertEqual((exchange.outcome, exchange.status), ("client-disconnected", None))
