"""
Issue 12's faults as the official ``openai`` SDK meets them over a loopback socket: what it
raises, and whether (and after how long) it retries.  The table in ``docs/api.md`` ("Faults")
states what these tests check.
"""

from __future__ import annotations

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.config import Config, ResponsesConfig
from mockllm.http.routes import MockLLM
from tests.support import Finished, listen

MESSAGES = [{"role": "user", "content": "Hello"}]


class SDKFaultCase(unittest.TestCase):
    """Base: a server on the real reactor (short stalls), and SDK clients for it."""

    timeout = 60

    def setUp(self) -> None:
        self.finished = Finished()
        config = Config(responses=ResponsesConfig(stream_interval_ms=2, timeout_ms=1500))
        self.app = MockLLM(config, reactor, observers=[self.finished])
        self.base = listen(self, self.app)

    def sdk(self, **kwargs) -> openai.OpenAI:
        """An SDK client for this server, closed in cleanup."""
        kwargs.setdefault("timeout", 10)
        client = openai.OpenAI(base_url=self.base + "/v1", api_key="sk-test", **kwargs)
        self.addCleanup(client.close)
        return client

    def create(self, client: openai.OpenAI, query: dict, stream: bool = False):
        """``chat.completions.create`` with ``query`` as controls, off the reactor thread; a stream is read to its end."""

        def call():
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream, extra_query=query)
            return list(answer) if stream else answer

        return deferToThread(call)

    async def raises(self, kind: type, client: openai.OpenAI, query: dict, stream: bool = False) -> BaseException:
        """Assert ``create`` raises ``kind``; return the exception."""
        with self.assertRaises(kind) as caught:
            await self.create(client, query, stream)
        return caught.exception

    def attempts(self) -> list[str | None]:
        """The outcome of each request the server saw, in order."""
        return [ex.outcome for ex in self.finished]


class ConnectionFaultTests(SDKFaultCase):
    """Resets, closes and stalls before any byte."""

    async def test_reset_is_retried_then_a_connection_error(self) -> None:
        """``max_retries=2`` against ``fail=reset``: three attempts, then ``APIConnectionError``."""
        error = await self.raises(openai.APIConnectionError, self.sdk(max_retries=2), {"fail": "reset"})
        self.assertNotIsInstance(error, openai.APITimeoutError)
        self.assertEqual(self.attempts(), ["reset"] * 3)

    async def test_close_is_retried_then_a_connection_error(self) -> None:
        """``fail=close`` (an empty reply): retried, then ``APIConnectionError``."""
        await self.raises(openai.APIConnectionError, self.sdk(max_retries=1), {"fail": "close"})
        self.assertEqual(self.attempts(), ["closed"] * 2)

    async def test_stall_trips_the_read_timeout(self) -> None:
        """``fail=stall`` held longer than the SDK's timeout: ``APITimeoutError``."""
        await self.raises(openai.APITimeoutError, self.sdk(max_retries=0, timeout=0.5), {"fail": "stall"})

    async def test_stall_shorter_than_the_timeout(self) -> None:
        """A stall that ends (FIN) before the SDK's timeout leaves the body short: ``APIConnectionError``."""
        error = await self.raises(openai.APIConnectionError, self.sdk(max_retries=0, timeout=5), {"fail": "stall"})
        self.assertNotIsInstance(error, openai.APITimeoutError)

    async def test_malformed_body(self) -> None:
        """``fail=malformed``: a 200 whose JSON does not parse is not retried; the SDK raises the decoder's
        ``ValueError`` (``json.JSONDecodeError``), not an ``openai`` error."""
        error = await self.raises(ValueError, self.sdk(max_retries=2), {"fail": "malformed"})
        self.assertNotIsInstance(error, openai.OpenAIError)
        self.assertEqual(self.attempts(), ["cut-by-fault"])


class StreamFaultTests(SDKFaultCase):
    """Faults mid-stream are never retried (the 200 has arrived); the iteration raises."""

    async def test_error_event_raises_api_error(self) -> None:
        """``fail_mode=error``: ``APIError`` mid-iteration with the error's message and body; one attempt."""
        query = {"fail_chunk": "3", "fail_mode": "error", "fail_status": "503"}
        error = await self.raises(openai.APIError, self.sdk(max_retries=2), query, stream=True)
        self.assertNotIsInstance(error, openai.APIStatusError)
        self.assertEqual(error.message, "The engine is currently overloaded, please try again later.")
        self.assertEqual(error.body["code"], "overloaded")
        self.assertEqual(self.attempts(), ["cut-by-fault"])

    async def test_reset_mid_stream(self) -> None:
        """``fail_mode=reset``: ``APIConnectionError`` mid-iteration, not retried."""
        query = {"fail_chunk": "3", "fail_mode": "reset"}
        await self.raises(openai.APIConnectionError, self.sdk(max_retries=2), query, stream=True)
        self.assertEqual(self.attempts(), ["reset"])

    async def test_close_mid_stream(self) -> None:
        """``fail_mode=close``: the unfinished body is an ``APIConnectionError``, not retried."""
        query = {"fail_chunk": "3", "fail_mode": "close"}
        await self.raises(openai.APIConnectionError, self.sdk(max_retries=2), query, stream=True)
        self.assertEqual(self.attempts(), ["closed"])

    async def test_stall_mid_stream(self) -> None:
        """``fail_mode=stall`` past the read timeout: ``APITimeoutError`` mid-iteration."""
        query = {"fail_chunk": "3", "fail_mode": "stall"}
        await self.raises(openai.APITimeoutError, self.sdk(max_retries=2, timeout=0.5), query, stream=True)
        self.assertEqual(len(self.attempts()), 1)


class DripTests(SDKFaultCase):
    """``drip_ms``: a body that never stops arriving passes a per-read timeout."""

    async def test_drip_outlasts_the_timeout(self) -> None:
        """Each piece comes within the 0.5 s read timeout, so the answer arrives though it takes longer."""
        start = reactor.seconds()
        completion = await self.create(self.sdk(max_retries=0, timeout=0.5), {"drip_ms": "15"})
        self.assertEqual(completion.choices[0].message.role, "assistant")
        self.assertGreater(reactor.seconds() - start, 0.5)

    async def test_drip_slower_than_the_timeout(self) -> None:
        """Pieces further apart than the read timeout: ``APITimeoutError``."""
        await self.raises(openai.APITimeoutError, self.sdk(max_retries=0, timeout=0.3), {"drip_ms": "600"})


class RetryHintTests(SDKFaultCase):
    """``x-should-retry`` and the retry-after formats, as the SDK obeys them."""

    async def test_should_retry_false_is_not_retried(self) -> None:
        """A 500 with ``should_retry=false``: one attempt, ``InternalServerError``."""
        await self.raises(openai.InternalServerError, self.sdk(max_retries=2), {"fail": "500", "should_retry": "false"})
        self.assertEqual(len(self.attempts()), 1)

    async def test_should_retry_true_retries_a_400(self) -> None:
        """A 400 (never retried by status) with ``should_retry=true``: three attempts, ``BadRequestError``."""
        query = {"fail": "400", "should_retry": "true", "retry_after": "50"}
        await self.raises(openai.BadRequestError, self.sdk(max_retries=2), query)
        self.assertEqual(len(self.attempts()), 3)

    def gaps(self) -> list[float]:
        """Seconds between the starts of successive attempts."""
        starts = [ex.started for ex in self.finished]
        return [b - a for a, b in zip(starts, starts[1:])]

    async def test_ms_format(self) -> None:
        """``retry_after_format=ms``: the SDK waits the ``retry-after-ms`` it was told."""
        query = {"fail": "503", "retry_after": "400", "retry_after_format": "ms"}
        await self.raises(openai.InternalServerError, self.sdk(max_retries=1), query)
        [gap] = self.gaps()
        self.assertTrue(0.39 <= gap < 1.0, gap)

    async def test_date_format(self) -> None:
        """``retry_after_format=date``: the SDK waits until the HTTP-date (whole seconds, so 1-2 s for 1000 ms)."""
        query = {"fail": "429", "retry_after": "1000", "retry_after_format": "date"}
        await self.raises(openai.RateLimitError, self.sdk(max_retries=1), query)
        [gap] = self.gaps()
        self.assertTrue(0.0 < gap <= 2.1, gap)

    async def test_wait_above_120_s_is_not_retried(self) -> None:
        """A ``retry-after`` above 120 s makes the SDK give up at once, whatever the status."""
        query = {"fail": "429", "retry_after": "121000", "retry_after_format": "seconds"}
        await self.raises(openai.RateLimitError, self.sdk(max_retries=2), query)
        self.assertEqual(len(self.attempts()), 1)
