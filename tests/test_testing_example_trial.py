"""
docs/testing.md's trial example: the same retrying client against ``serve``, on the running reactor.

The SDK blocks, so the test runs it in a thread while the reactor serves it.
"""

import openai
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.testing import assert_honoured_retry_after, assert_retried, serve

MODEL = "gpt-4o-mini"


def ask(client: openai.OpenAI, question: str) -> str:
    """The client under test: one chat completion (the SDK retries 429s and 5xx)."""
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content


class RetryTests(unittest.TestCase):
    """The SDK's retries, judged by the server's verdict."""

    async def test_gives_up_after_two_retries(self):
        """Three 429s asking for 100 ms each: two retries, each after the wait, then RateLimitError."""
        server = await serve(self)
        failing = {"X-Mock-Fail": "429", "X-Mock-Retry-After": "100"}
        client = server.openai_client(max_retries=2, default_headers=failing)
        with self.assertRaises(openai.RateLimitError):
            await deferToThread(ask, client, "Hello")
        self.assertEqual([r["status"] for r in server.requests()], [429, 429, 429])
        assert_retried(server, times=2)
        assert_honoured_retry_after(server)

    async def test_flaky_then_fine(self):
        """Under flaky (each key's first request fails with 503) the retry succeeds; the verdict says so."""
        server = await serve(self, scenario="flaky", params={"fail_first": 1})
        answer = await deferToThread(ask, server.openai_client(max_retries=1), "Hello")
        self.assertTrue(answer)
        verdict = server.verdict()
        self.assertEqual((verdict["logical_requests"], verdict["retries"]), (1, 1))
        self.assertFalse(verdict["over_budget"])
