"""
docs/testing.md's in-memory example: a hand-written retrying client on a ``task.Clock``.

No socket and no sleeping: the test advances the clock the client waits on.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from mockllm.testing import assert_honoured_retry_after, assert_retried, memory

URL = "http://mockllm.invalid/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


async def complete(http, clock, attempts=3):
    """The client under test: on a 429 it waits what retry-after-ms says, on ``clock``, then tries again."""
    for _ in range(attempts):
        response = await http.post(URL, json=BODY)
        if response.code != 429:
            return await response.json()
        wait_ms = float(response.headers.getRawHeaders("retry-after-ms")[0])
        await deferLater(clock, wait_ms / 1000)
    raise RuntimeError(f"still rate-limited after {attempts} attempts")


class InMemoryTests(unittest.TestCase):
    """The client's waits, on the test's clock."""

    def test_waits_out_two_429s(self):
        """flaky with 429s: each asks for 1000 ms, the client waits exactly that, the third attempt succeeds."""
        clock = Clock()
        http, server = memory(clock, scenario="flaky", params={"fail_first": 2, "fail_status": 429})
        answer = Deferred.fromCoroutine(complete(http, clock))
        for _ in range(2):
            clock.advance(1.0)
            http.flush()
        self.assertEqual(self.successResultOf(answer)["object"], "chat.completion")
        self.assertEqual([r["status"] for r in server.requests()], [429, 429, 200])
        assert_retried(server, times=2)
        assert_honoured_retry_after(server)
        (request,) = server.verdict()["keys"]["127.0.0.1"]["requests"]
        self.assertEqual(request["backoff_ms"], [1000.0, 1000.0])
