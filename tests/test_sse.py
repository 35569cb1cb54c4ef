"""
The :class:`~mockllm.sse.EventStream` push producer on its own: pacing,
back-pressure (pause/resume), the end of the stream and cancellation.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial import unittest

from mockllm.plan import StreamTiming
from mockllm.sse import EventStream, paced


class FakeRequest:
    """Just enough of a request for a push producer: it records writes and registration."""

    def __init__(self) -> None:
        self.channel = object()
        self.producer = None
        self.streaming = None
        self.written: list[bytes] = []

    def registerProducer(self, producer, streaming: bool) -> None:
        """Record the producer (a real request would hand it to the transport)."""
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def write(self, data: bytes) -> None:
        """Record ``data``."""
        self.written.append(data)


class EventStreamTests(unittest.TestCase):
    """Pacing and back-pressure."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.request = FakeRequest()
        self.events = [b"a", b"b", b"c", b"d"]
        self.stream = EventStream(self.request, self.clock, zip([0, 1, 1, 1], self.events), watch=1)
        self.done = self.stream.start()

    def test_registered_and_paced(self) -> None:
        """The stream registers itself as a streaming producer and writes on its timers."""
        self.assertIs(self.request.producer, self.stream)
        self.assertTrue(self.request.streaming)
        self.assertEqual(self.request.written, [b"a"])
        self.clock.advance(1)
        self.assertEqual(self.request.written, [b"a", b"b"])
        self.assertEqual(self.stream.watched_at, 1)

    def test_lazy(self) -> None:
        """Events are pulled one at a time: an open stream holds only the next event."""
        pulled = []

        def items():
            for i in range(1000):
                pulled.append(i)
                yield 1.0, b"x"

        request = FakeRequest()
        EventStream(request, self.clock, items()).start()
        self.assertEqual(pulled, [0])
        self.clock.advance(1)
        self.assertEqual(pulled, [0, 1])
        self.clock.advance(1)
        self.assertEqual(request.written, [b"x", b"x"])
        self.clock.pump([1] * 998)

    def test_end(self) -> None:
        """At the end it unregisters, then fires with the number of events sent."""
        self.clock.pump([1, 1, 1])
        self.assertIsNone(self.request.producer)
        self.assertEqual(self.successResultOf(self.done), 4)

    def test_pause_holds_events(self) -> None:
        """While paused nothing is written; on resume the due event goes out, then pacing resumes."""
        self.stream.pauseProducing()
        self.clock.pump([1, 1, 1])
        self.assertEqual(self.request.written, [b"a"])
        self.stream.resumeProducing()
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


class PauseTests(unittest.TestCase):
    """:func:`paced`."""

    def test_shape(self) -> None:
        """The role event goes at once, then the TTFT, then the inter-token pause."""
        timing = StreamTiming(first_token=0.5, inter_token=0.1)
        pairs = list(paced([b"r", b"a", b"b", b"c"], timing, random.Random(0)))
        self.assertEqual(pairs, [(0.0, b"r"), (0.5, b"a"), (0.1, b"b"), (0.1, b"c")])

    def test_jitter_bounds(self) -> None:
        """Jitter keeps each pause within its band, and varies it."""
        timing = StreamTiming(first_token=1.0, inter_token=1.0, jitter=0.2)
        pauses = [p for p, _ in paced([b"e"] * 200, timing, random.Random(1))][1:]
        self.assertTrue(all(0.8 <= p <= 1.2 for p in pauses))
        self.assertGreater(len(set(pauses)), 100)
