"""
Issue 12's faults at every layer: ``fail=reset|close|stall|malformed``, ``fail_mode`` at
``fail_chunk``, ``drip_ms`` and the retry hints, in memory on a ``task.Clock`` (the script,
the records, the metrics, the admin API and chaos) and over a real loopback socket with a raw
client (RST as ``ECONNRESET``, FIN as EOF, a stall as headers then silence, a drip as gaps).
"""

from __future__ import annotations

import email.utils
import json
import random
import socket
import time
from collections import Counter
from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.behaviour.controls import parse_controls
from mockllm.behaviour.errors import APIError
from mockllm.behaviour.plan import (
    NO_FAULT,
    ChunkFault,
    CloseFault,
    ErrorEventFault,
    MalformedFault,
    ResetFault,
    StallFault,
    StatusFault,
)
from mockllm.config import Config, ResponsesConfig
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.completions import TextCompletions
from mockllm.behaviour.reply import Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.http.routes import MockLLM
from mockllm.scenario import ScenarioRunner, define, discover
from tests.observe_support import observed_app
from tests.support import CHAT_BODY, Finished, RawHTTP, _dechunk, listen, parse_sse, validate

PATH = "/v1/chat/completions"
STREAM = {**CHAT_BODY, "stream": True}
#: Short holds, so a stall ends within a test.
FAST = Config(responses=ResponsesConfig(stream_interval_ms=10, timeout_ms=300))


class MemoryCase(unittest.TestCase):
    """Base: an observed app on a clock; every test ends with no timer left on it."""

    def setUp(self) -> None:
        self.o = observed_app(FAST)
        self.addCleanup(self.assert_nothing_pending)

    def assert_nothing_pending(self) -> None:
        """No timer of any answer is left on the clock."""
        self.assertEqual(self.o.clock.getDelayedCalls(), [])

    def send(self, query: str = "", body: object = CHAT_BODY, headers: dict | None = None, path: str = PATH) -> RawHTTP:
        """One POST; the connection is closed in cleanup."""
        conn = RawHTTP(self.o.app).send("POST", path + query, body, headers)
        self.addCleanup(conn.disconnect)
        return conn

    def record(self) -> dict:
        """The journal's only record."""
        [record] = self.o.journal.query()
        return record

    def error(self, conn: RawHTTP) -> dict:
        """The response's error object, checked against the schema."""
        return validate("ErrorResponse", conn.json())["error"]


class BeforeAnyByteTests(MemoryCase):
    """``fail=reset`` and ``fail=close`` end the connection before any byte."""

    def test_reset(self) -> None:
        """Nothing is written and the transport is aborted (RST); the record says reset."""
        for body in (CHAT_BODY, STREAM):
            conn = self.send("?fail=reset", body)
            self.assertEqual(conn.raw, b"")
            self.assertTrue(conn.transport.disconnected)
            conn.disconnect()
        records = self.o.journal.query()
        self.assertEqual([(r["fault"], r["fault_at"], r["outcome"], r["status"]) for r in records], [("reset", 0, "reset", None)] * 2)

    def test_close(self) -> None:
        """Nothing is written and the transport is closed cleanly (FIN), not aborted."""
        conn = self.send(headers={"X-Mock-Fail": "close"})
        self.assertEqual(conn.raw, b"")
        self.assertTrue(conn.transport.disconnecting)
        self.assertFalse(conn.transport.disconnected)
        conn.disconnect()
        self.assertEqual((self.record()["fault"], self.record()["outcome"]), ("close", "closed"))

    def test_after_delay(self) -> None:
        """``delay`` comes first: nothing happens until it is over."""
        conn = self.send("?fail=reset&delay=500")
        self.o.clock.advance(0.499)
        self.assertFalse(conn.transport.disconnected)
        self.o.clock.advance(0.001)
        self.assertTrue(conn.transport.disconnected)


class StallTests(MemoryCase):
    """``fail=stall``: status and headers, then nothing for ``--timeout-ms``, then close."""

    def test_whole_answer(self) -> None:
        """A JSON answer's headers (with its content-length) and no body byte until the hold ends."""
        conn = self.send("?fail=stall")
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.headers["content-type"], "application/json")
        self.assertGreater(int(conn.headers["content-length"]), 100)
        self.assertEqual(conn.body, b"")
        self.o.clock.advance(0.299)
        self.assertFalse(conn.transport.disconnecting)
        self.o.clock.advance(0.001)
        self.assertTrue(conn.transport.disconnecting)
        self.assertEqual(conn.body, b"")
        conn.disconnect()
        record = self.record()
        self.assertEqual((record["fault"], record["outcome"], record["status"]), ("stall", "stalled", 200))

    def test_stream(self) -> None:
        """A stream's headers, no event, then close."""
        conn = self.send("?fail=stall", STREAM)
        self.assertEqual(conn.headers["content-type"], "text/event-stream; charset=utf-8")
        self.o.clock.advance(0.3)
        self.assertEqual(conn.events(), [])
        self.assertTrue(conn.transport.disconnecting)

    def test_client_leaving_cancels_the_hold(self) -> None:
        """A client that gives up during the stall leaves no timer."""
        conn = self.send("?fail=stall")
        self.assertEqual(len(self.o.clock.getDelayedCalls()), 1)
        conn.disconnect()
        self.assertEqual(self.record()["outcome"], "client-disconnected")


class MalformedTests(MemoryCase):
    """``fail=malformed``: a 200 JSON answer cut mid-object."""

    def test_cut_body(self) -> None:
        """The body has its content-length, starts like a completion and does not parse."""
        for body in (CHAT_BODY, STREAM):
            conn = self.send("?fail=malformed", body)
            self.assertEqual(conn.status, 200)
            self.assertEqual(conn.headers["content-type"], "application/json")
            self.assertTrue(conn.complete)
            self.assertEqual(len(conn.body), int(conn.headers["content-length"]))
            self.assertTrue(conn.body.startswith(b'{"id":"chatcmpl-'))
            self.assertRaises(ValueError, json.loads, conn.body)
        self.assertEqual({(r["fault"], r["outcome"]) for r in self.o.journal.query()}, {("malformed", "cut-by-fault")})


class StreamModeTests(MemoryCase):
    """``fail_chunk=N`` with each ``fail_mode``: events 1..N-1, then the fault."""

    def stream(self, mode: str, extra: str = "") -> RawHTTP:
        """A stream with the fault at event 3, run to its end."""
        conn = self.send(f"?fail_chunk=3&fail_mode={mode}{extra}", STREAM)
        self.o.clock.pump([0.01] * 100)
        return conn

    def assert_two_good_events(self, conn: RawHTTP) -> None:
        """The first two events are well-formed chunks."""
        for event in conn.events()[:2]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))

    def test_error(self) -> None:
        """Event 3 is ``data: {"error": ...}`` for a 500, the stream ends properly, no [DONE]."""
        conn = self.stream("error")
        self.assertTrue(conn.complete)
        self.assertEqual(len(conn.events()), 3)
        self.assert_two_good_events(conn)
        error = validate("ErrorResponse", json.loads(conn.events()[2]))["error"]
        self.assertEqual((error["type"], error["code"]), ("server_error", "internal_error"))
        record = self.record()
        self.assertEqual((record["fault"], record["fault_at"], record["outcome"]), ("error_event", 3, "cut-by-fault"))
        self.assertEqual(record["response"]["events_sent"], 3)

    def test_error_status(self) -> None:
        """``fail_status=429`` makes the in-band error a rate-limit error."""
        conn = self.stream("error", "&fail_status=429")
        error = json.loads(conn.events()[2])["error"]
        self.assertEqual((error["type"], error["code"]), ("rate_limit_error", "rate_limit_exceeded"))

    def test_close(self) -> None:
        """Two events, then a clean close with the chunked body left unfinished."""
        conn = self.stream("close")
        self.assertEqual(len(conn.events()), 2)
        self.assert_two_good_events(conn)
        self.assertFalse(conn.complete)
        self.assertTrue(conn.transport.disconnecting)
        self.assertFalse(conn.transport.disconnected)
        conn.disconnect()
        self.assertEqual((self.record()["fault"], self.record()["outcome"]), ("close", "closed"))

    def test_reset(self) -> None:
        """Two events, then an abort (in memory nothing is buffered, so it comes at once)."""
        conn = self.stream("reset")
        self.assertEqual(len(conn.events()), 2)
        self.assertTrue(conn.transport.disconnected)
        conn.disconnect()
        record = self.record()
        self.assertEqual((record["fault"], record["fault_at"], record["outcome"]), ("reset", 3, "reset"))

    def test_stall(self) -> None:
        """Two events, then silence for the hold, then close."""
        conn = self.send("?fail_chunk=3&fail_mode=stall", STREAM)
        self.o.clock.pump([0.01] * 10)
        self.assertEqual(len(conn.events()), 2)
        self.assertFalse(conn.transport.disconnecting)
        self.o.clock.pump([0.01] * 30)
        self.assertTrue(conn.transport.disconnecting)
        self.assertEqual(len(conn.events()), 2)
        conn.disconnect()
        self.assertEqual(self.record()["outcome"], "stalled")

    def test_malformed_is_the_default(self) -> None:
        """``fail_mode=malformed`` and no ``fail_mode`` both cut event N as before."""
        for mode in ("&fail_mode=malformed", ""):
            conn = self.send("?fail_chunk=2" + mode, STREAM)
            self.o.clock.pump([0.01] * 50)
            self.assertRaises(ValueError, json.loads, conn.events()[1])
        self.assertEqual({r["fault"] for r in self.o.journal.query()}, {"fail_chunk"})

    def test_modes_need_a_stream(self) -> None:
        """Without streaming a mid-stream fault has nothing to act on: a normal answer, no fault."""
        conn = self.send("?fail_chunk=2&fail_mode=reset")
        validate("CreateChatCompletionResponse", conn.json())
        self.assertEqual((self.record()["fault"], self.record()["fault_at"]), (None, None))

    def test_metrics(self) -> None:
        """Each fault is counted by name and outcome in ``mockllm_faults_total``."""
        for mode in ("error", "reset", "close"):
            self.stream(mode).disconnect()
        scrape = RawHTTP(self.o.app).send("GET", "/metrics")
        self.addCleanup(scrape.disconnect)
        page = scrape.body
        for fault, outcome in [("error_event", "cut-by-fault"), ("reset", "reset"), ("close", "closed")]:
            self.assertIn(f'mockllm_faults_total{{fault="{fault}",outcome="{outcome}"}} 1.0'.encode(), page)


class DripTests(MemoryCase):
    """``drip_ms=M``: headers at once, then a few bytes every M ms."""

    def test_whole_answer(self) -> None:
        """Headers go at once; each 10 ms adds a piece of at most 8 bytes; the answer ends whole."""
        conn = self.send(headers={"X-Mock-Drip-Ms": "10"})
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.body, b"")
        length = int(conn.headers["content-length"])
        sizes = []
        while not conn.complete:
            self.o.clock.advance(0.01)
            sizes.append(len(conn.body))
        steps = [b - a for a, b in zip([0, *sizes], sizes)]
        self.assertTrue(all(0 < step <= 8 for step in steps), steps)
        self.assertEqual(len(steps), -(-length // 8))
        validate("CreateChatCompletionResponse", conn.json())
        self.assertEqual((self.record()["fault"], self.record()["outcome"]), ("drip", "completed"))

    def test_stream_events(self) -> None:
        """Each event trickles in pieces; events are counted once each; the stream ends with [DONE]."""
        conn = self.send("?drip_ms=5", STREAM)
        self.o.clock.advance(0.005)
        self.assertEqual(len(conn.body), 8)
        self.o.clock.pump([0.005] * 5000)
        events = conn.events()
        self.assertEqual(events[-1], "[DONE]")
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))
        self.assertEqual(self.record()["response"]["events_sent"], len(events))

    def test_pause_holds_the_drip(self) -> None:
        """While the transport is paused no piece is written."""
        conn = self.send("?drip_ms=10")
        self.o.clock.advance(0.01)
        written = conn.body
        conn.transport.producer.pauseProducing()
        self.o.clock.pump([0.01] * 5)
        self.assertEqual(conn.body, written)
        conn.transport.producer.resumeProducing()
        self.assertGreater(len(conn.body), len(written))
        conn.disconnect()

    def test_drip_with_a_fault(self) -> None:
        """A drip combines with a mid-stream fault; the record names both."""
        self.send("?drip_ms=1&fail_chunk=2&fail_mode=error", STREAM)
        self.o.clock.pump([0.001] * 3000)
        self.assertEqual((self.record()["fault"], self.record()["outcome"]), ("error_event+drip", "cut-by-fault"))


class RetryHintTests(MemoryCase):
    """``should_retry`` and ``retry_after_format`` on ``fail=<status>``."""

    def test_should_retry(self) -> None:
        """``x-should-retry`` says what was asked; without the control it is absent."""
        self.assertEqual(self.send("?fail=400&should_retry=true").headers["x-should-retry"], "true")
        self.assertEqual(self.send("?fail=503", headers={"X-Mock-Should-Retry": "false"}).headers["x-should-retry"], "false")
        self.assertNotIn("x-should-retry", self.send("?fail=503").headers)

    def test_formats(self) -> None:
        """Each format sends only its header, with the retry_after value."""
        seconds = self.send("?fail=503&retry_after=1500&retry_after_format=seconds").headers
        self.assertEqual((seconds["retry-after"], "retry-after-ms" in seconds), ("2", False))
        ms = self.send("?fail=429&retry_after=1500&retry_after_format=ms").headers
        self.assertEqual((ms["retry-after-ms"], "retry-after" in ms), ("1500", False))
        self.assertIn("x-ratelimit-limit-requests", ms)
        none = self.send("?fail=429&retry_after_format=none").headers
        self.assertFalse({"retry-after", "retry-after-ms"} & set(none))

    def test_date(self) -> None:
        """``date`` sends an HTTP-date that many seconds after the server's clock."""
        headers = self.send("?fail=503&retry_after=90000&retry_after_format=date").headers
        self.assertNotIn("retry-after-ms", headers)
        when = email.utils.parsedate_to_datetime(headers["retry-after"]).timestamp()
        self.assertEqual(when, self.o.clock.seconds() + 90)

    def test_default_429_unchanged(self) -> None:
        """Without hints a 429 still sends both retry headers of a 1 s wait."""
        headers = self.send("?fail=429").headers
        self.assertEqual((headers["retry-after"], headers["retry-after-ms"]), ("1", "1000"))


class BadControlTests(MemoryCase):
    """Bad fault controls are 400s naming the control."""

    def test_bad_values(self) -> None:
        """Each bad value is an ``invalid_request_error`` whose ``param`` is the control."""
        cases = [
            ("?fail=explode", "fail"),
            ("?fail_chunk=2&fail_mode=boom", "fail_mode"),
            ("?fail_mode=nope", "fail_mode"),
            ("?fail_chunk=2&fail_mode=error&fail_status=200", "fail_status"),
            ("?fail_status=abc", "fail_status"),
            ("?drip_ms=-5", "drip_ms"),
            ("?drip_ms=999999999", "drip_ms"),
            ("?fail=500&should_retry=maybe", "should_retry"),
            ("?fail=500&retry_after_format=hours", "retry_after_format"),
        ]
        for query, param in cases:
            conn = self.send(query)
            self.assertEqual(conn.status, 400, query)
            error = self.error(conn)
            self.assertEqual((error["type"], error["param"], error["code"]), ("invalid_request_error", param, "invalid_value"), query)

    def test_message_lists_the_words(self) -> None:
        """An unknown ``fail`` names every accepted word."""
        message = self.error(self.send("?fail=explode"))["message"]
        for word in ("timeout", "none", "reset", "close", "stall", "malformed"):
            self.assertIn(f"'{word}'", message)


class ControlsParserTests(unittest.TestCase):
    """``parse_controls`` over any lookup (as response rules call it) makes every fault."""

    def parse(self, **controls: str):
        """The fault made from ``controls`` (a dict lookup)."""
        return parse_controls(controls.get, 600_000, 30.0)

    def test_every_fault(self) -> None:
        """Each control value gives its fault, with the hold from ``timeout_s``."""
        self.assertEqual(self.parse(fail="reset").fault, ResetFault())
        self.assertEqual(self.parse(fail="CLOSE").fault, CloseFault())
        self.assertEqual(self.parse(fail="stall").fault, StallFault(30.0))
        self.assertEqual(self.parse(fail="malformed").fault, MalformedFault())
        self.assertEqual(self.parse(fail_chunk="4").fault, ChunkFault(4))
        self.assertEqual(self.parse(fail_chunk="4", fail_mode="error", fail_status="503").fault, ErrorEventFault(4, 503))
        self.assertEqual(self.parse(fail_chunk="4", fail_mode="error").fault, ErrorEventFault(4, 500))
        self.assertEqual(self.parse(fail_chunk="2", fail_mode="reset").fault, ResetFault(2))
        self.assertEqual(self.parse(fail_chunk="2", fail_mode="stall").fault, StallFault(30.0, 2))
        self.assertEqual(self.parse(drip_ms="25").drip, 0.025)

    def test_hints_and_precedence(self) -> None:
        """Retry hints go on a status fault; ``fail`` beats ``fail_chunk`` unless it is ``none``."""
        fault = self.parse(fail="400", should_retry="true", retry_after="2500", retry_after_format="ms").fault
        self.assertEqual(fault, StatusFault(400, retry_after=2.5, should_retry=True, retry_after_format="ms"))
        self.assertEqual(self.parse(fail="reset", fail_chunk="3").fault, ResetFault())
        self.assertEqual(self.parse(fail="none", fail_chunk="3", fail_mode="close").fault, CloseFault(3))
        self.assertIs(self.parse(fail="none").fault, NO_FAULT)

    def test_bad_value_raises(self) -> None:
        """A bad value raises the 400 ``APIError`` naming it."""
        with self.assertRaises(APIError) as caught:
            self.parse(fail_chunk="2", fail_mode="explode")
        self.assertEqual((caught.exception.status, caught.exception.param), (400, "fail_mode"))


class StreamErrorTests(unittest.TestCase):
    """``OpenAIDialect.stream_error``: the in-band error event of chat and text completions."""

    def test_shape(self) -> None:
        """``data: {"error": {message, type, param, code}}`` and a blank line, valid as an ErrorResponse."""
        error = APIError(503, "The engine is currently overloaded, please try again later.", "server_error", None, "overloaded")
        for dialect in (ChatCompletions(), TextCompletions()):
            request = CompletionRequest(dialect.kind, "gpt-4o-mini", True, False, ("hi",), {})
            raw = dialect.stream_error(request, Stamp("id", 1), error)
            self.assertTrue(raw.endswith(b"\n\n"))
            [event] = parse_sse(raw)
            self.assertEqual(validate("ErrorResponse", json.loads(event)), error.body())


class ChaosTests(unittest.TestCase):
    """The chaos scenario mixes the faults by the weights it is given."""

    def setUp(self) -> None:
        self.run = ScenarioRunner(define(discover().scenarios), Clock(), "chaos", seed=4)

    def kinds(self, stream: bool, n: int = 600) -> Counter:
        """How often each fault (or drip) was planned for ``n`` requests."""
        request = CompletionRequest("chat", "gpt-4o-mini", stream, False, ("hi",), {})
        from mockllm.behaviour.caller import Caller

        caller = Caller("k", "127.0.0.1:1", None, None)
        found = Counter()
        for _ in range(n):
            part = self.run.plan(request, caller)[1]
            found[type(part.fault).__name__ if part.fault is not None else "drip" if part.drip else "none"] += 1
        return found

    def test_default_mix_unchanged(self) -> None:
        """By default only statuses, timeouts and malformed events are drawn."""
        self.assertEqual(set(self.kinds(True)) - {"none"}, {"StatusFault", "TimeoutFault", "ChunkFault"})

    def test_weights(self) -> None:
        """Weights pick the new faults; streams-only kinds never reach whole answers."""
        weights = {"weight_status": 0, "weight_timeout": 0, "weight_chunk": 0, "weight_reset": 1, "weight_stall": 1,
                   "weight_error_event": 1, "weight_drip": 1, "fault_percent": 100}
        self.run.switch("chaos", weights)
        stream = self.kinds(True)
        self.assertEqual(set(stream), {"ResetFault", "StallFault", "ErrorEventFault", "drip"})
        self.assertTrue(all(count > 100 for count in stream.values()), stream)
        self.assertEqual(set(self.kinds(False)), {"ResetFault", "StallFault", "drip"})

    def test_no_weight_no_fault(self) -> None:
        """With every weight 0 no fault is drawn."""
        self.run.switch("chaos", {f"weight_{k}": 0 for k in ("status", "timeout", "chunk")} | {"fault_percent": 100})
        self.assertEqual(set(self.kinds(True, 100)), {"none"})

    def test_bad_weight(self) -> None:
        """A negative weight is refused like any bad parameter."""
        self.assertRaises(ValueError, self.run.switch, "chaos", {"weight_reset": -1})


class AdminScenarioTests(MemoryCase):
    """``PUT /__admin/scenario`` switches chaos's weights for the next requests."""

    def setUp(self) -> None:
        self.o = observed_app(FAST, scenarios=ScenarioRunner(define(discover().scenarios), Clock(), seed=1))
        self.addCleanup(self.assert_nothing_pending)

    def test_switch_to_resets(self) -> None:
        """After switching chaos to only resets, every completion is reset before any byte."""
        params = {"weight_status": 0, "weight_timeout": 0, "weight_chunk": 0, "weight_reset": 1,
                  "fault_percent": 100, "max_delay_ms": 0}
        put = RawHTTP(self.o.app).send("PUT", "/__admin/scenario", {"name": "chaos", "params": params})
        self.assertEqual(put.status, 200, put.body)
        put.disconnect()
        for _ in range(3):
            conn = self.send()
            self.assertEqual(conn.raw, b"")
            self.assertTrue(conn.transport.disconnected)
            conn.disconnect()
        self.assertEqual({(r["scenario"], r["fault"], r["outcome"]) for r in self.o.journal.query()}, {("chaos", "reset", "reset")})

    def test_bad_weight_is_400(self) -> None:
        """A bad weight is a 400 and changes nothing."""
        put = RawHTTP(self.o.app).send("PUT", "/__admin/scenario", {"name": "chaos", "params": {"weight_reset": "x"}})
        self.assertEqual(put.status, 400)
        put.disconnect()


# --- over a real socket ----------------------------------------------------------------------


def raw_request(base: str, query: str, body: object, idle: float = 3.0) -> tuple[list[tuple[float, bytes]], str]:
    """Send one request on a fresh socket (blocking; run it in a thread) and read until the end.

    Returns every read as ``(monotonic time, bytes)`` and how the connection ended: ``eof``,
    ``reset`` (``ECONNRESET``) or ``idle`` (nothing for ``idle`` seconds).
    """
    url = urlsplit(base)
    raw = json.dumps(body).encode()
    head = (f"POST {PATH}{query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(raw)}\r\n\r\n").encode()
    reads: list[tuple[float, bytes]] = []
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.settimeout(idle)
        sock.sendall(head + raw)
        reads.append((time.monotonic(), b""))
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return reads, "reset"
            except socket.timeout:
                return reads, "idle"
            if not data:
                return reads, "eof"
            reads.append((time.monotonic(), data))


def joined(reads: list[tuple[float, bytes]]) -> bytes:
    """Everything read."""
    return b"".join(data for _, data in reads)


class SocketTests(unittest.TestCase):
    """Each fault over a loopback socket, seen by a raw client."""

    timeout = 30

    def setUp(self) -> None:
        self.finished = Finished()
        config = Config(responses=ResponsesConfig(stream_interval_ms=5, timeout_ms=400))
        self.app = MockLLM(config, reactor, rng=random.Random(1), observers=[self.finished])
        self.base = listen(self, self.app)

    def call(self, query: str, body: object = CHAT_BODY):
        """The raw exchange, off the reactor thread."""
        return deferToThread(raw_request, self.base, query, body)

    def head_and_body(self, reads) -> tuple[bytes, bytes]:
        """The response head and what followed it."""
        head, _, rest = joined(reads).partition(b"\r\n\r\n")
        return head, rest

    async def test_reset_before_any_byte(self) -> None:
        """``fail=reset``: no byte, then ``ECONNRESET``; whole and streamed alike."""
        for body in (CHAT_BODY, STREAM):
            reads, end = await self.call("?fail=reset", body)
            self.assertEqual((joined(reads), end), (b"", "reset"))

    async def test_close_before_any_byte(self) -> None:
        """``fail=close``: no byte, then EOF (a FIN, not a reset)."""
        reads, end = await self.call("?fail=close")
        self.assertEqual((joined(reads), end), (b"", "eof"))

    async def test_stall(self) -> None:
        """``fail=stall``: headers with the content-length at once, no body byte for the hold, then EOF."""
        reads, end = await self.call("?fail=stall")
        head, rest = self.head_and_body(reads)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "))
        self.assertIn(b"Content-Length: ", head)
        self.assertEqual((rest, end), (b"", "eof"))
        self.assertLess(reads[1][0] - reads[0][0], 0.3)
        self.assertGreaterEqual(time.monotonic() - reads[1][0], 0.35)

    async def test_malformed(self) -> None:
        """``fail=malformed``: a complete 200 JSON answer that does not parse."""
        reads, end = await self.call("?fail=malformed")
        head, rest = self.head_and_body(reads)
        self.assertIn(b"Content-Type: application/json", head)
        self.assertIn(b"Content-Length: %d" % len(rest), head)
        self.assertRaises(ValueError, json.loads, rest)

    async def test_reset_mid_stream(self) -> None:
        """``fail_mode=reset`` at event 3: both earlier events arrive, then ``ECONNRESET``, no [DONE]."""
        reads, end = await self.call("?fail_chunk=3&fail_mode=reset", STREAM)
        self.assertEqual(end, "reset")
        events = parse_sse(_dechunk(self.head_and_body(reads)[1]))
        self.assertEqual(len(events), 2)
        for event in events:
            validate("CreateChatCompletionStreamResponse", json.loads(event))

    async def test_reset_right_after_the_headers(self) -> None:
        """``fail_chunk=1&fail_mode=reset``: the headers, written in the same turn, still arrive before the RST."""
        reads, end = await self.call("?fail_chunk=1&fail_mode=reset", STREAM)
        self.assertEqual(end, "reset")
        self.assertTrue(joined(reads).startswith(b"HTTP/1.1 200 "))

    async def test_close_mid_stream(self) -> None:
        """``fail_mode=close``: two events, then EOF with the chunked body unfinished."""
        reads, end = await self.call("?fail_chunk=3&fail_mode=close", STREAM)
        body = self.head_and_body(reads)[1]
        self.assertEqual(end, "eof")
        self.assertFalse(body.endswith(b"0\r\n\r\n"))
        self.assertEqual(len(parse_sse(_dechunk(body))), 2)

    async def test_stall_mid_stream(self) -> None:
        """``fail_mode=stall``: two events, then no byte for the hold, then EOF."""
        reads, end = await self.call("?fail_chunk=3&fail_mode=stall", STREAM)
        self.assertEqual(end, "eof")
        self.assertEqual(len(parse_sse(_dechunk(self.head_and_body(reads)[1]))), 2)
        self.assertGreaterEqual(time.monotonic() - reads[-1][0], 0.35)

    async def test_error_event(self) -> None:
        """``fail_mode=error``: two events, the error event, a properly ended body, no [DONE]."""
        reads, end = await self.call("?fail_chunk=3&fail_mode=error&fail_status=503", STREAM)
        body = self.head_and_body(reads)[1]
        self.assertEqual(end, "eof")
        self.assertTrue(body.endswith(b"0\r\n\r\n"))
        events = parse_sse(_dechunk(body))
        self.assertEqual(len(events), 3)
        self.assertEqual(validate("ErrorResponse", json.loads(events[2]))["error"]["code"], "overloaded")

    async def test_drip(self) -> None:
        """``drip_ms=20``: the headers at once, then the body in many reads about 20 ms apart."""
        reads, end = await self.call("?drip_ms=20")
        self.assertEqual(end, "eof")
        validate("CreateChatCompletionResponse", json.loads(self.head_and_body(reads)[1]))
        gaps = [b[0] - a[0] for a, b in zip(reads[1:], reads[2:])]
        self.assertGreater(len(gaps), 10)
        self.assertGreaterEqual(sorted(gaps)[len(gaps) // 2], 0.015, gaps)
        self.assertEqual(self.finished[-1].outcome, "completed")

