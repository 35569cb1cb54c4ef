"""
The retry verdict (``mockllm/observe/verdict.py``, ``GET /__admin/verdict``, ``MockServer.verdict``):
how attempts are grouped into logical requests and what is judged about each, on a
``task.Clock`` through the real server in memory.
"""

from __future__ import annotations

import email.utils

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from mockllm.observe.verdict import advertised_wait_ms
from mockllm.testing import memory
from tests.support import CHAT_BODY, validate

BASE = "http://mockllm.invalid"
URL = BASE + "/v1/chat/completions"
OTHER_BODY = {**CHAT_BODY, "messages": [{"role": "user", "content": "Something else"}]}


class Harness:
    """A server in memory and a client that sends requests as a test tells it, on one clock."""

    def __init__(self, testcase: unittest.TestCase, **options) -> None:
        self.testcase = testcase
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.http, self.server = memory(self.clock, **options)

    def send(self, body=CHAT_BODY, query: str = "", retry_count: int | None = None, **headers: str):
        """POST one chat completion now; the response once it has been answered in full."""
        if retry_count is not None:
            headers["x-stainless-retry-count"] = str(retry_count)
        done = Deferred.fromCoroutine(self._send(body, query, headers))
        for _ in range(200):  # let a stream run to its end on the clock
            if done.called:
                break
            self.clock.advance(0.05)
            self.http.flush()
        return self.testcase.successResultOf(done)

    async def _send(self, body, query, headers):
        response = await self.http.post(URL + query, json=body, headers=headers)
        await response.content()
        return response

    def wait(self, seconds: float) -> None:
        """Let time pass before the next request."""
        self.clock.advance(seconds)

    def requests(self) -> list[dict]:
        """The verdict's logical requests, every key's."""
        return [r for key in self.server.verdict()["keys"].values() for r in key["requests"]]

    def get(self, path: str):
        """A GET on the admin API: ``(status, JSON body)``."""
        async def fetch():
            response = await self.http.get(BASE + path)
            return response.code, await response.json()
        return self.testcase.successResultOf(Deferred.fromCoroutine(fetch()))


class GroupingTests(unittest.TestCase):
    """Attempts become logical requests by the SDK's retry count, else by an identical body."""

    def test_sdk_retry_count_groups_attempts(self) -> None:
        """0, 1, 2 in x-stainless-retry-count are one logical request; a new 0 starts another."""
        h = Harness(self)
        for count in (0, 1, 2, 0):
            h.send(query="?fail=500", retry_count=count)
        first, second = h.requests()
        self.assertEqual([a["retry_count"] for a in first["attempts"]], [0, 1, 2])
        self.assertEqual((first["retries"], second["retries"]), (2, 0))

    def test_interleaved_calls_of_one_key_keep_their_own_attempts(self) -> None:
        """Two concurrent SDK calls (different bodies) retried in turn stay two logical requests."""
        h = Harness(self)
        for body, count in ((CHAT_BODY, 0), (OTHER_BODY, 0), (CHAT_BODY, 1), (OTHER_BODY, 1)):
            h.send(body, "?fail=500", retry_count=count)
        bodies = [{a["request_id"] for a in r["attempts"]} for r in h.requests()]
        self.assertEqual([len(b) for b in bodies], [2, 2])
        records = {r["request_id"]: r["request"]["body"] for r in h.server.requests()}
        for ids in bodies:
            self.assertEqual(len({records[i] for i in ids}), 1)

    def test_identical_body_after_a_failure_is_a_retry(self) -> None:
        """Without the header: the same body after a failed attempt, within the window, is its retry."""
        h = Harness(self)
        h.send(query="?fail=503")
        h.wait(2)
        h.send()
        (request,) = h.requests()
        self.assertEqual([a["status"] for a in request["attempts"]], [503, 200])
        self.assertEqual(request["backoff_ms"], [2000.0])
        self.assertTrue(request["succeeded"])

    def test_outside_the_window_is_a_new_request(self) -> None:
        """The same body after longer than window_ms is a new logical request; a wider window joins it."""
        h = Harness(self)
        h.send(query="?fail=503")
        h.wait(61)
        h.send()
        self.assertEqual(h.server.verdict()["logical_requests"], 2)
        self.assertEqual(h.server.verdict(window_ms=61_000)["logical_requests"], 1)

    def test_repeating_a_success_is_not_a_retry(self) -> None:
        """Asking the same again after a whole answer is a second logical request."""
        h = Harness(self)
        h.send()
        h.send()
        self.assertEqual([r["retries"] for r in h.requests()], [0, 0])

    def test_keys_are_judged_apart(self) -> None:
        """Each X-Mock-Key has its own logical requests; another key's identical body is not a retry."""
        h = Harness(self)
        h.send(query="?fail=503", **{"X-Mock-Key": "a"})
        h.send(**{"X-Mock-Key": "b"})
        verdict = h.server.verdict()
        self.assertEqual(sorted(verdict["keys"]), ["a", "b"])
        self.assertEqual(verdict["retries"], 0)
        self.assertEqual(h.server.verdict(key="a")["keys"].keys(), {"a"})


class JudgementTests(unittest.TestCase):
    """What the verdict says about each logical request."""

    def test_retry_before_the_advertised_wait_is_flagged(self) -> None:
        """A 429 asks for 1000 ms: a retry 400 ms later did not honour it, one 1000 ms later did."""
        h = Harness(self)
        h.send(query="?fail=429", retry_count=0)
        h.wait(0.4)
        h.send(query="?fail=429", retry_count=1)
        h.wait(1.0)
        h.send(retry_count=2)
        (request,) = h.requests()
        self.assertEqual([a["advertised_wait_ms"] for a in request["attempts"]], [1000.0, 1000.0, None])
        self.assertEqual([a["honoured_wait"] for a in request["attempts"]], [None, False, True])
        self.assertFalse(request["honoured_retry_after"])
        self.assertEqual(request["waits_advertised"], 2)

    def test_retry_after_ms_wins_over_retry_after(self) -> None:
        """retry_after=250 sends retry-after-ms 250 and retry-after 1: the SDK waits 250 ms, so does the verdict."""
        h = Harness(self)
        h.send(query="?fail=429&retry_after=250", retry_count=0)
        h.wait(0.25)
        h.send(retry_count=1)
        (record, _) = h.server.requests()
        self.assertEqual(record["response"]["retry_headers"], {"retry-after-ms": "250", "retry-after": "1"})
        (request,) = h.requests()
        self.assertEqual(request["attempts"][1]["honoured_wait"], True)

    def test_no_advertised_wait_is_not_judged(self) -> None:
        """A 500 advertises no wait: the retry's honoured_wait is null, and the request still honours."""
        h = Harness(self)
        h.send(query="?fail=500", retry_count=0)
        h.send(retry_count=1)
        (request,) = h.requests()
        self.assertIsNone(request["attempts"][1]["honoured_wait"])
        self.assertEqual(request["waits_advertised"], 0)
        self.assertTrue(request["honoured_retry_after"])

    def test_stream_retried_after_content_duplicates_it(self) -> None:
        """A stream cut after content, retried with the same body: duplicated_content."""
        h = Harness(self)
        body = {**CHAT_BODY, "stream": True}
        h.send(body, "?fail_chunk=4")
        h.send(body)
        (request,) = h.requests()
        self.assertEqual([a["content_sent"] for a in request["attempts"]], [True, True])
        self.assertEqual([a["after_content"] for a in request["attempts"]], [False, True])
        self.assertTrue(request["duplicated_content"])
        self.assertTrue(h.server.verdict()["duplicated_content"])

    def test_stream_cut_before_content_is_safe_to_retry(self) -> None:
        """Cut at the role chunk (no token sent yet), the retry duplicates nothing."""
        h = Harness(self)
        body = {**CHAT_BODY, "stream": True}
        h.send(body, "?fail_chunk=1")
        h.send(body)
        (request,) = h.requests()
        self.assertEqual(request["retries"], 1)
        self.assertFalse(request["duplicated_content"])

    def test_attempt_budget(self) -> None:
        """Four attempts are over the default budget of 3, within a budget of 4."""
        h = Harness(self)
        for count in range(4):
            h.send(query="?fail=503", retry_count=count)
        self.assertTrue(h.server.verdict()["over_budget"])
        self.assertFalse(h.server.verdict(attempt_budget=4)["over_budget"])
        self.assertEqual(h.server.verdict(attempt_budget=4)["attempt_budget"], 4)


def _record(headers: dict[str, str], at: float = 1_700_000_000.0) -> dict:
    """The parts of a journal record :func:`advertised_wait_ms` reads."""
    return {"timestamp": at, "timings": {"ttfb_ms": 0.0}, "response": {"retry_headers": headers}}


class AdvertisedWaitTests(unittest.TestCase):
    """The advertised wait is read as the OpenAI SDK reads it."""

    def test_order_and_forms(self) -> None:
        """ms first; a bad ms falls back to seconds; seconds may be fractional; nothing is None."""
        self.assertEqual(advertised_wait_ms(_record({"retry-after-ms": "120", "retry-after": "9"})), 120.0)
        self.assertEqual(advertised_wait_ms(_record({"retry-after-ms": "soon", "retry-after": "2"})), 2000.0)
        self.assertEqual(advertised_wait_ms(_record({"retry-after": "0.5"})), 500.0)
        self.assertIsNone(advertised_wait_ms(_record({})))
        self.assertIsNone(advertised_wait_ms(_record({"retry-after": "later"})))

    def test_http_date(self) -> None:
        """An HTTP-date retry-after is the time from the answer's headers to that date."""
        at = 1_700_000_000.0
        date = email.utils.formatdate(at + 30, usegmt=True)
        self.assertEqual(advertised_wait_ms(_record({"retry-after": date}, at)), 30_000.0)


class AdminVerdictTests(unittest.TestCase):
    """``GET /__admin/verdict`` answers what ``MockServer.verdict`` returns; bad options are 400s."""

    def test_same_as_the_handle(self) -> None:
        """The admin body equals the handle's verdict, options included."""
        h = Harness(self)
        h.send(query="?fail=429", retry_count=0)
        h.send(retry_count=1)
        status, body = h.get("/__admin/verdict?attempt_budget=1&window_ms=5")
        self.assertEqual(status, 200)
        self.assertEqual(body, h.server.verdict(attempt_budget=1, window_ms=5))
        self.assertTrue(body["over_budget"])

    def test_bad_options(self) -> None:
        """Unknown parameters (status, limit too) and bad values are OpenAI-shaped 400s naming them."""
        h = Harness(self)
        for query, param in (("status=429", "status"), ("limit=1", "limit"), ("window_ms=-1", "window_ms"),
                             ("attempt_budget=0", "attempt_budget"), ("window_ms=3600001", "window_ms"),
                             ("since=nan", "since")):
            status, body = h.get("/__admin/verdict?" + query)
            self.assertEqual(status, 400, query)
            validate("ErrorResponse", body)
            self.assertEqual(body["error"]["param"], param, query)
            self.assertEqual(body["error"]["type"], "invalid_request_error")

    def test_handle_raises_the_same_message(self) -> None:
        """The handle turns the admin API's 400 into a ValueError with its message."""
        h = Harness(self)
        with self.assertRaises(ValueError) as caught:
            h.server.verdict(window_ms="soon")
        self.assertIn("window_ms", str(caught.exception))

    def test_empty_journal(self) -> None:
        """No request: an empty verdict that says nothing is wrong."""
        body = Harness(self).get("/__admin/verdict")[1]
        self.assertEqual((body["logical_requests"], body["keys"]), (0, {}))
        self.assertTrue(body["honoured_retry_after"])
