"""
The seed's failure controls (``delay``, ``fail``, ``fail_chunk``), by query
string and by ``X-Mock-*`` header, on a ``task.Clock``, including clients
that go away while a timer is pending.
"""

from __future__ import annotations

import json

from twisted.trial import unittest

from mockllm.config import Config, ResponsesConfig
from tests.support import CHAT_BODY, Finished, RawHTTP, make_app, validate

PATH = "/v1/chat/completions"


class FaultCase(unittest.TestCase):
    """Base: an app on a clock, talked to over an in-memory HTTP connection."""

    def setUp(self) -> None:
        self.app, self.clock = make_app(Config(responses=ResponsesConfig(stream_interval_ms=10, timeout_ms=30_000)))

    def send(self, path: str = PATH, body: object = CHAT_BODY, headers: dict | None = None) -> RawHTTP:
        """Open a connection and send one request."""
        conn = RawHTTP(self.app).send("POST", path, body, headers)
        self.addCleanup(conn.disconnect)
        return conn

    def error(self, conn: RawHTTP) -> dict:
        """The response's error object, after checking it against the schema."""
        return validate("ErrorResponse", conn.json())["error"]


class DelayTests(FaultCase):
    """``delay=N`` waits N ms on the injected clock."""

    def test_query_delay(self) -> None:
        """Nothing is sent before 3000 ms; the completion arrives at 3000 ms."""
        conn = self.send(PATH + "?delay=3000")
        self.clock.advance(2.999)
        self.assertEqual(conn.raw, b"")
        self.clock.advance(0.001)
        self.assertEqual(conn.status, 200)
        validate("CreateChatCompletionResponse", conn.json())

    def test_header_delay(self) -> None:
        """``X-Mock-Delay`` works like the query parameter."""
        conn = self.send(headers={"X-Mock-Delay": "500"})
        self.assertEqual(conn.raw, b"")
        self.clock.advance(0.5)
        self.assertEqual(conn.status, 200)

    def test_processing_ms_counts_delay(self) -> None:
        """``openai-processing-ms`` reports the time spent, delay included."""
        conn = self.send(PATH + "?delay=1200")
        self.clock.advance(1.2)
        self.assertEqual(conn.headers["openai-processing-ms"], "1200")

    def test_disconnect_cancels_delay(self) -> None:
        """A client that leaves during the delay leaves no timer behind and gets nothing."""
        conn = self.send(PATH + "?delay=5000")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        conn.disconnect()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(conn.raw, b"")


class StatusFaultTests(FaultCase):
    """``fail=<status>``."""

    def test_429_seed_body_and_headers(self) -> None:
        """429 has the seed's body plus param null, and retry/rate-limit headers."""
        conn = self.send(PATH + "?fail=429")
        self.assertEqual(conn.status, 429)
        self.assertEqual(
            self.error(conn),
            {"message": "Rate limit exceeded", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"},
        )
        headers = conn.headers
        self.assertEqual(headers["retry-after"], "1")
        self.assertEqual(headers["retry-after-ms"], "1000")
        for name in ("limit-requests", "remaining-requests", "reset-requests", "limit-tokens", "remaining-tokens", "reset-tokens"):
            self.assertIn("x-ratelimit-" + name, headers)
        self.assertIn(b"429 Too Many Requests", conn.raw.split(b"\r\n")[0])

    def test_retry_after_control(self) -> None:
        """``retry_after=250`` makes the 429 advertise a 250 ms wait."""
        conn = self.send(PATH + "?fail=429&retry_after=250")
        self.assertEqual(conn.headers["retry-after-ms"], "250")
        self.assertEqual(conn.headers["x-ratelimit-reset-requests"], "0.25s")

    def test_500_seed_body(self) -> None:
        """500 has the seed's server_error / internal_error body."""
        conn = self.send(headers={"X-Mock-Fail": "500"})
        self.assertEqual(conn.status, 500)
        self.assertEqual(
            self.error(conn),
            {"message": "Internal server error", "type": "server_error", "param": None, "code": "internal_error"},
        )

    def test_known_statuses(self) -> None:
        """Statuses the real API uses carry its type and code."""
        expected = {
            400: ("invalid_request_error", None),
            401: ("invalid_request_error", "invalid_api_key"),
            403: ("invalid_request_error", "model_not_allowed"),
            404: ("invalid_request_error", "model_not_found"),
            503: ("server_error", "overloaded"),
            504: ("timeout_error", None),
        }
        for status, (type_, code) in expected.items():
            conn = self.send(PATH + f"?fail={status}")
            self.assertEqual(conn.status, status)
            error = self.error(conn)
            self.assertEqual((error["type"], error["code"]), (type_, code), status)

    def test_generic_status(self) -> None:
        """Any other 4xx/5xx gets a generic error of that status."""
        conn = self.send(PATH + "?fail=418")
        self.assertEqual(conn.status, 418)
        self.assertEqual(self.error(conn)["message"], "Simulated 418 error")

    def test_fault_after_delay(self) -> None:
        """``delay`` and ``fail`` combine: the error comes after the delay."""
        conn = self.send(PATH + "?fail=503&delay=100")
        self.assertIsNone(conn.status)
        self.clock.advance(0.1)
        self.assertEqual(conn.status, 503)

    def test_query_beats_header(self) -> None:
        """When both are given, the query string wins over the X-Mock header."""
        conn = self.send(PATH + "?fail=502", headers={"X-Mock-Fail": "500"})
        self.assertEqual(conn.status, 502)


class TimeoutFaultTests(FaultCase):
    """``fail=timeout`` holds the connection with no bytes for 30 s, then 504."""

    def test_hold_then_504(self) -> None:
        """No byte for 30 s, then the seed's 504 body."""
        conn = self.send(PATH + "?fail=timeout")
        self.clock.advance(29.999)
        self.assertEqual(conn.raw, b"")
        self.clock.advance(0.001)
        self.assertEqual(conn.status, 504)
        error = self.error(conn)
        self.assertEqual((error["message"], error["type"]), ("Gateway timeout", "timeout_error"))

    def test_configurable_hold(self) -> None:
        """``timeout_ms`` in the configuration changes the hold."""
        self.app, self.clock = make_app(Config(responses=ResponsesConfig(timeout_ms=2000)))
        conn = self.send(PATH + "?fail=timeout")
        self.clock.advance(2)
        self.assertEqual(conn.status, 504)

    def test_disconnect_cancels_hold(self) -> None:
        """A client that gives up during the hold leaves no timer behind."""
        conn = self.send(PATH + "?fail=timeout&delay=10")
        self.clock.advance(0.01)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        conn.disconnect()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ChunkFaultTests(FaultCase):
    """``fail_chunk=N`` while streaming."""

    def test_event_n_is_malformed(self) -> None:
        """Events 1..N-1 parse, event N does not, and there is no [DONE]."""
        conn = self.send(PATH + "?stream=true&fail_chunk=3")
        self.clock.pump([0.01] * 50)
        self.assertTrue(conn.complete)
        events = conn.events()
        self.assertEqual(len(events), 3)
        for event in events[:2]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))
        self.assertRaises(ValueError, json.loads, events[2])
        self.assertNotIn("[DONE]", events)

    def test_outcome_recorded(self) -> None:
        """The exchange records the stream as cut by the fault, with the events sent."""
        finished = Finished()
        self.app, self.clock = make_app(observers=[finished])
        self.send(PATH + "?stream=true&fail_chunk=4")
        self.clock.pump([0.1] * 50)
        [ex] = finished
        self.assertEqual((ex.outcome, ex.events_sent, ex.fault), ("cut-by-fault", 4, "fail_chunk"))

    def test_header_form(self) -> None:
        """``X-Mock-Fail-Chunk: 1`` breaks the very first event."""
        conn = self.send(body=dict(CHAT_BODY, stream=True), headers={"X-Mock-Fail-Chunk": "1"})
        self.clock.pump([0.01] * 50)
        events = conn.events()
        self.assertEqual(len(events), 1)
        self.assertRaises(ValueError, json.loads, events[0])

    def test_beyond_the_stream(self) -> None:
        """A fail_chunk past the last event leaves the stream whole."""
        conn = self.send(PATH + "?stream=true&fail_chunk=10000")
        self.clock.pump([0.01] * 200)
        self.assertEqual(conn.events()[-1], "[DONE]")

    def test_ignored_without_stream(self) -> None:
        """Without streaming, fail_chunk has nothing to break: a normal completion."""
        conn = self.send(PATH + "?fail_chunk=2")
        self.assertEqual(conn.status, 200)
        validate("CreateChatCompletionResponse", conn.json())


class StreamDisconnectTests(FaultCase):
    """A client that leaves mid-stream."""

    def test_disconnect_mid_stream(self) -> None:
        """No timer is left, nothing more is written, and the request is never finished."""
        conn = self.send(body=dict(CHAT_BODY, stream=True))
        self.clock.advance(0.01)
        self.clock.advance(0.01)
        self.assertEqual(len(conn.events()), 3)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        conn.disconnect()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        written = conn.raw
        self.clock.pump([0.01] * 100)
        self.assertEqual(conn.raw, written)
        self.assertFalse(conn.complete)


class FaultCombinationTests(FaultCase):
    """How the request's own fault controls combine."""

    def test_fail_none_keeps_own_fail_chunk(self) -> None:
        """``fail=none`` (a typical default header) masks the scenario's fault, not the request's fail_chunk."""
        conn = self.send(PATH + "?stream=true&fail_chunk=2", headers={"X-Mock-Fail": "none"})
        self.clock.pump([0.01] * 50)
        self.assertEqual(len(conn.events()), 2)
        self.assertRaises(ValueError, json.loads, conn.events()[1])

    def test_fail_chunk_without_stream_is_no_fault(self) -> None:
        """A non-streamed request with fail_chunk has nothing cut, and records no fault."""
        finished = Finished()
        self.app, self.clock = make_app(observers=[finished])
        self.send(PATH + "?fail_chunk=2")
        self.assertEqual([(e.status, e.fault) for e in finished], [(200, None)])


class UnexpectedErrorTests(FaultCase):
    """A bug inside the server is an OpenAI-shaped 500, logged, never an HTML traceback."""

    def test_bug_is_json_500(self) -> None:
        """A scenario that raises: JSON 500 with the common headers; the exchange says 500; the failure is logged."""
        finished = Finished()

        class Broken:
            """A scenario chooser with a bug."""

            def plan(self, request, caller):
                """Fail like a buggy drop-in scenario."""
                raise ZeroDivisionError("bug")

        self.app, self.clock = make_app(scenarios=Broken(), observers=[finished])
        conn = self.send()
        self.assertEqual(conn.status, 500)
        self.assertEqual(self.error(conn)["code"], "internal_error")
        self.assertIn("x-request-id", conn.headers)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual([(e.status, e.error) for e in finished], [(500, "internal error: bug")])


class ShutdownOutcomeTests(FaultCase):
    """Requests the server's own shutdown cuts are not blamed on their clients."""

    def test_server_shutdown(self) -> None:
        """After StoppingMarker.stopService, a cut request's outcome is server-shutdown; before, client-disconnected."""
        from mockllm.http.exchanges import Lifecycle, StoppingMarker

        finished = Finished()
        lifecycle = Lifecycle()
        self.app, self.clock = make_app(observers=[finished], lifecycle=lifecycle)
        marker = StoppingMarker(lifecycle)
        marker.startService()
        self.send(PATH + "?delay=1000").disconnect()
        marker.stopService()
        self.send(PATH + "?delay=1000").disconnect()
        self.assertEqual([e.outcome for e in finished], ["client-disconnected", "server-shutdown"])
