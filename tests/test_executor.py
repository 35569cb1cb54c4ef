"""
The executor on its own (pacing, back-pressure, the ends of an answer, cancellation) and the
engine's script for a stream (pacing of lead and content frames, the TTFT of every dialect).
"""

from __future__ import annotations

import random
import socket

from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.http_headers import Headers

from mockllm.behaviour.engine import paced, stream_script
from mockllm.behaviour.executor import Executor
from mockllm.behaviour.plan import StreamTiming
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.steps import Abort, Close, Count, Event, Finish, Head, Wait, Write
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.completions import TextCompletions
from mockllm.observe.exchange import Exchange


class FakeTransport:
    """Records how the connection was ended."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.ended: str | None = None
        self._sock = sock

    def getHandle(self) -> socket.socket | None:
        """The socket under the transport (``None``: in memory)."""
        return self._sock

    def loseConnection(self) -> None:
        """A FIN."""
        self.ended = "closed"

    def abortConnection(self) -> None:
        """An RST."""
        self.ended = "aborted"


class FakeChannel:
    """A channel with a transport."""

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport


class FakeRequest:
    """Just enough of a request for the executor: it records writes, headers and registration."""

    def __init__(self, transport: FakeTransport | None = None) -> None:
        self.channel = FakeChannel(transport or FakeTransport())
        self.producer = None
        self.streaming = None
        self.written: list[bytes] = []
        self.code: int | None = None
        self.responseHeaders = Headers()

    def registerProducer(self, producer, streaming: bool) -> None:
        """Record the producer (a real request would hand it to the transport)."""
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def write(self, data: bytes) -> None:
        """Record ``data``."""
        self.written.append(data)

    def setResponseCode(self, code: int, phrase: bytes) -> None:
        """Record the status."""
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a header."""
        self.responseHeaders.setRawHeaders(name, [value])

    @property
    def headers(self) -> dict[bytes, bytes]:
        """The headers set, lower-case name to last value."""
        return {name.lower(): values[-1] for name, values in self.responseHeaders.getAllRawHeaders()}


def exchange() -> Exchange:
    """A fresh exchange that started at time 0."""
    return Exchange("req_1", 0.0, "POST", "/v1/chat/completions", "", "127.0.0.1:1", [], b"")


def no_timing(elapsed: float) -> tuple:
    """No timing headers."""
    return ()


class ExecutorTests(unittest.TestCase):
    """Pacing and back-pressure of a paced stream of events."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.request = FakeRequest()
        self.ex = exchange()
        steps = [Event(b"a"), Wait(1), Event(b"b", first_token=True), Wait(1), Event(b"c"), Wait(1), Event(b"d")]
        self.executor = Executor(self.request, self.clock, steps, self.ex, no_timing)
        self.done = self.executor.run()

    def test_registered_and_paced(self) -> None:
        """The executor registers itself as a streaming producer and writes on its timers."""
        self.assertIs(self.request.producer, self.executor)
        self.assertTrue(self.request.streaming)
        self.assertEqual(self.request.written, [b"a"])
        self.clock.advance(1)
        self.assertEqual(self.request.written, [b"a", b"b"])
        self.assertEqual(self.ex.first_token_at, 1)
        self.assertEqual(self.ex.events_sent, 2)

    def test_lazy(self) -> None:
        """Steps are pulled one at a time: an open stream holds only the next event."""
        pulled = []

        def steps():
            for i in range(1000):
                pulled.append(i)
                yield Event(b"x")
                yield Wait(1.0)

        request = FakeRequest()
        Executor(request, self.clock, steps(), exchange(), no_timing).run()
        self.assertEqual(pulled, [0])
        self.clock.advance(1)
        self.assertEqual(pulled, [0, 1])
        self.clock.advance(1)
        self.assertEqual(request.written, [b"x", b"x", b"x"])
        self.clock.pump([1] * 998)

    def test_end(self) -> None:
        """At the end it unregisters, then fires so Klein finishes the request."""
        self.clock.pump([1, 1, 1])
        self.assertIsNone(self.request.producer)
        self.assertEqual(self.successResultOf(self.done), b"")
        self.assertEqual(self.ex.events_sent, 4)

    def test_pause_holds_events(self) -> None:
        """While paused nothing is written; on resume the due event goes out, then pacing resumes."""
        self.executor.pauseProducing()
        self.clock.pump([1, 1, 1])
        self.assertEqual(self.request.written, [b"a"])
        self.executor.resumeProducing()
        self.assertEqual(self.request.written, [b"a", b"b"])
        self.clock.advance(1)
        self.assertEqual(self.request.written, [b"a", b"b", b"c"])
        self.assertNoResult(self.done)

    def test_cancel(self) -> None:
        """Cancelling (the client left) drops the pending timer and the registration."""
        self.done.cancel()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.request.producer)
        self.failureResultOf(self.done)
        self.clock.advance(5)
        self.assertEqual(self.request.written, [b"a"])


class EndingTests(unittest.TestCase):
    """How a script ends an answer: finishing, closing (FIN) or resetting (RST)."""

    def run_steps(self, steps, transport: FakeTransport | None = None):
        """Run ``steps`` at once; return the request, the exchange and what ``run`` returned."""
        request, ex = FakeRequest(transport), exchange()
        result = Executor(request, Clock(), steps, ex, lambda elapsed: ((b"x-took", b"%d" % elapsed),)).run()
        return request, ex, result

    def test_whole_answer_at_once(self) -> None:
        """A script with no wait runs at once: status, headers (timing ones too), body; no producer."""
        steps = [Head(201, ((b"content-type", b"application/json"),)), Count(7), Write(b"{}"), Finish()]
        request, ex, result = self.run_steps(steps)
        self.assertEqual(result, b"")
        self.assertEqual((request.code, request.headers), (201, {b"content-type": b"application/json", b"x-took": b"0"}))
        self.assertEqual(request.written, [b"{}"])
        self.assertEqual((ex.status, ex.completion_tokens), (201, 7))
        self.assertIsNone(request.producer)

    def test_finish_with_an_outcome(self) -> None:
        """``Finish(outcome)`` records the outcome (a fault's cut) on the exchange."""
        _, ex, _ = self.run_steps([Event(b"a"), Finish("cut-by-fault")])
        self.assertEqual(ex.outcome, "cut-by-fault")

    def test_close(self) -> None:
        """``Close`` unregisters and closes the connection cleanly, leaving the Deferred to Klein's cancel."""
        transport = FakeTransport()
        request, ex, result = self.run_steps([Event(b"a"), Close()], transport)
        self.assertEqual((transport.ended, ex.outcome), ("closed", "closed"))
        self.assertIsNone(request.producer)
        self.assertNoResult(result)
        result.cancel()
        self.failureResultOf(result)

    def test_abort_resets(self) -> None:
        """``Abort`` sets ``SO_LINGER`` 0 on the socket (so closing sends RST) and aborts."""
        with socket.socket() as sock:
            transport = FakeTransport(sock)
            _, ex, result = self.run_steps([Abort()], transport)
            linger = sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        self.assertEqual((transport.ended, ex.outcome), ("aborted", "reset"))
        self.assertEqual(linger[:4], (1).to_bytes(4, "little"))
        result.cancel()
        self.failureResultOf(result)


class PauseTests(unittest.TestCase):
    """:func:`paced`: the pause before each frame."""

    def test_shape(self) -> None:
        """A lead frame goes at once, then the TTFT, then the inter-token pause."""
        pause = paced(StreamTiming(first_token=0.5, inter_token=0.1), random.Random(0))
        self.assertEqual([pause(True, 0), pause(False, 0), pause(False, 1), pause(False, 2)], [0.0, 0.5, 0.1, 0.1])

    def test_jitter_bounds(self) -> None:
        """Jitter keeps each pause within its band, and varies it."""
        pause = paced(StreamTiming(first_token=1.0, inter_token=1.0, jitter=0.2), random.Random(1))
        pauses = [pause(False, n) for n in range(200)]
        self.assertTrue(all(0.8 <= p <= 1.2 for p in pauses))
        self.assertGreater(len(set(pauses)), 100)


class StreamScriptTests(unittest.TestCase):
    """The engine's stream script in each dialect: headers first, then paced events."""

    def waits(self, dialect) -> list[tuple[str, object]]:
        """The steps of a two-piece reply's stream, as (kind, wait or first-token flag)."""
        from mockllm.behaviour.request import CompletionRequest

        request = CompletionRequest(dialect.kind, "gpt-4o-mini", True, False, ("hi",), {})
        pause = paced(StreamTiming(first_token=0.5, inter_token=0.1), random.Random(0))
        steps = stream_script(dialect, request, Reply.of_text("Hi there"), Stamp("id", 1), pause)
        return [(type(s).__name__, s.seconds if isinstance(s, Wait) else getattr(s, "first_token", None)) for s in steps]

    def test_chat_role_event_at_once(self) -> None:
        """Chat: headers and the role event at once, the first content after the TTFT, then the ITL."""
        self.assertEqual(self.waits(ChatCompletions())[:6], [
            ("Head", None), ("Write", None), ("Event", False), ("Wait", 0.5), ("Event", True), ("Wait", 0.1),
        ])

    def test_legacy_first_token_waits_the_ttft(self) -> None:
        """Legacy completions have no role event: their first token waits the TTFT, the second the ITL."""
        self.assertEqual(self.waits(TextCompletions())[:6], [
            ("Head", None), ("Write", None), ("Wait", 0.5), ("Event", True), ("Wait", 0.1), ("Event", False),
        ])
