"""
End to end over a real loopback socket: the official ``openai`` SDK (run in a
thread, unchanged) and treq against a listening server.
"""

from __future__ import annotations

import json

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.http.routes import MockLLM
from mockllm.config import Config, ResponsesConfig
from tests.support import CHAT_BODY, listen, parse_sse, treq_client, validate

MESSAGES = [{"role": "user", "content": "Hello"}]


class Arrivals:
    """An observer noting when each completion request arrived (reactor time)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def exchange_started(self, exchange) -> None:
        """Note the arrival of a completion request."""
        if exchange.path.endswith("completions"):
            self.times.append(reactor.seconds())

    def exchange_finished(self, exchange) -> None:
        """Nothing to note."""


class LiveCase(unittest.TestCase):
    """Base: a server on a loopback port, on the real reactor."""

    timeout = 30

    def setUp(self) -> None:
        self.arrivals = Arrivals()
        config = Config(responses=ResponsesConfig(stream_interval_ms=1))
        self.app = MockLLM(config, reactor, observers=[self.arrivals])
        self.base = listen(self, self.app)

    def sdk(self, **kwargs) -> openai.OpenAI:
        """An SDK client for this server, closed in cleanup."""
        client = openai.OpenAI(base_url=self.base + "/v1", api_key="sk-test", timeout=10, **kwargs)
        self.addCleanup(client.close)
        return client

    def in_thread(self, fn, *args, **kwargs):
        """Run blocking SDK code off the reactor thread."""
        return deferToThread(fn, *args, **kwargs)


class SDKTests(LiveCase):
    """The official SDK works against the server unchanged."""

    async def test_chat(self) -> None:
        """A plain completion parses; its raw JSON validates."""
        client = self.sdk()
        raw = await self.in_thread(
            client.chat.completions.with_raw_response.create, model="gpt-4o-mini", messages=MESSAGES
        )
        validate("CreateChatCompletionResponse", json.loads(raw.text))
        self.assertTrue(raw.headers["x-request-id"].startswith("req_"))
        completion = raw.parse()
        self.assertEqual(completion.model, "gpt-4o-mini")
        self.assertEqual(completion.choices[0].message.role, "assistant")
        self.assertGreater(completion.usage.completion_tokens, 0)

    async def test_stream_with_usage(self) -> None:
        """A streamed completion with include_usage: text deltas then a usage chunk."""
        client = self.sdk()

        def consume():
            stream = client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            return list(stream)

        chunks = await self.in_thread(consume)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertGreater(len(text), 10)
        self.assertEqual(chunks[-1].choices, [])
        self.assertGreater(chunks[-1].usage.completion_tokens, 0)
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "stop")

    async def test_models(self) -> None:
        """Models list and retrieve; an unknown model raises NotFoundError."""
        client = self.sdk()
        listed = await self.in_thread(client.models.list)
        self.assertIn("gpt-4o-mini", [m.id for m in listed.data])
        model = await self.in_thread(client.models.retrieve, "gpt-4")
        self.assertEqual(model.owned_by, "openai")
        with self.assertRaises(openai.NotFoundError):
            await self.in_thread(client.models.retrieve, "gpt-nope")

    async def test_429_retried_after_advertised_wait(self) -> None:
        """The SDK retries a 429 after the retry-after-ms the server advertised, then gives up."""
        client = self.sdk(max_retries=2)
        headers = {"X-Mock-Fail": "429", "X-Mock-Retry-After": "300"}
        with self.assertRaises(openai.RateLimitError) as caught:
            await self.in_thread(
                client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
        self.assertEqual(caught.exception.status_code, 429)
        self.assertEqual(caught.exception.body["code"], "rate_limit_exceeded")
        times = self.arrivals.times
        self.assertEqual(len(times), 3)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(0.29 <= gap < 2.0 for gap in gaps), gaps)

    async def test_broken_chunk_breaks_the_sdk_stream(self) -> None:
        """With fail_chunk the SDK sees a malformed event and raises mid-stream."""
        client = self.sdk()

        def consume():
            stream = client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_query={"fail_chunk": "3"}
            )
            return list(stream)

        with self.assertRaises(Exception) as caught:
            await self.in_thread(consume)
        self.assertNotIsInstance(caught.exception, openai.APIStatusError)


class TreqTests(LiveCase):
    """treq over a real socket."""

    async def test_completion_and_stream(self) -> None:
        """A JSON completion and a streamed one, both schema-valid."""
        http = treq_client(self)
        url = self.base + "/v1/chat/completions"
        response = await http.post(url, json=CHAT_BODY)
        validate("CreateChatCompletionResponse", await response.json())
        response = await http.post(url + "?stream=true", json=CHAT_BODY)
        events = parse_sse(await response.content())
        self.assertEqual(events[-1], "[DONE]")
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))

    async def test_seed_error_over_socket(self) -> None:
        """``?fail=500`` over a socket: the seed's body and the common headers."""
        http = treq_client(self)
        response = await http.post(self.base + "/v1/chat/completions?fail=500", json=CHAT_BODY)
        self.assertEqual(response.code, 500)
        self.assertTrue(response.headers.hasHeader("openai-processing-ms"))
        self.assertEqual(validate("ErrorResponse", await response.json())["error"]["code"], "internal_error")
