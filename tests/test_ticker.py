"""
The ticker: one timer on the clock for every pending call, exact deadlines, cancellation that
leaves nothing behind, and executors sharing it (pacing, pause/resume, a client that leaves).
"""

from __future__ import annotations

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.task import Clock
from twisted.trial import unittest

from mockllm.behaviour.executor import Executor
from mockllm.behaviour.steps import Event, Wait
from mockllm.behaviour.ticker import COMPACT_AFTER, Ticker
from tests.test_executor import FakeRequest, exchange, no_timing


class TickerTests(unittest.TestCase):
    """The ticker on a ``task.Clock``."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.ticker = Ticker(self.clock)
        self.ran: list[str] = []

    def test_one_timer_for_all(self) -> None:
        """However many calls are pending, the clock holds one timer, for the earliest."""
        for name, delay in (("b", 2.0), ("a", 1.0), ("c", 3.0)):
            self.ticker.callLater(delay, self.ran.append, name)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [1.0])
        self.assertEqual(self.ticker.pending(), 3)

    def test_runs_every_due_call_in_one_tick(self) -> None:
        """One tick runs every call due by then, in deadline order, and sets the timer for the next."""
        for name, delay in (("b", 1.5), ("a", 1.0), ("c", 3.0)):
            self.ticker.callLater(delay, self.ran.append, name)
        self.clock.advance(2)
        self.assertEqual(self.ran, ["a", "b"])
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [3.0])

    def test_exact(self) -> None:
        """A call runs at its deadline, never before it."""
        self.ticker.callLater(0.2, self.ran.append, "x")
        self.clock.advance(0.2 - 1e-6)
        self.assertEqual(self.ran, [])
        self.clock.advance(1e-6)
        self.assertEqual(self.ran, ["x"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sooner_call_moves_the_timer(self) -> None:
        """A call due before the timer's time brings the one timer forward."""
        self.ticker.callLater(5, self.ran.append, "late")
        self.ticker.callLater(1, self.ran.append, "soon")
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [1.0])
        self.clock.advance(1)
        self.assertEqual(self.ran, ["soon"])

    def test_cancel(self) -> None:
        """A cancelled call never runs, drops what it held, and with nothing pending no timer is left."""
        held = object()
        due = self.ticker.callLater(1, self.ran.append, held)
        due.cancel()
        self.assertFalse(due.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.ticker.pending(), 0)
        self.assertEqual(due._args, ())
        self.clock.advance(2)
        self.assertEqual(self.ran, [])
        self.assertRaises(AlreadyCancelled, due.cancel)

    def test_cancel_one_of_several(self) -> None:
        """Cancelling one call leaves the others to run on time."""
        first = self.ticker.callLater(1, self.ran.append, "gone")
        self.ticker.callLater(1, self.ran.append, "kept")
        first.cancel()
        self.clock.advance(1)
        self.assertEqual(self.ran, ["kept"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_already_called(self) -> None:
        """A call that ran is no longer active, and cancelling it says so, as ``IDelayedCall`` does."""
        due = self.ticker.callLater(1, self.ran.append, "x")
        self.clock.advance(1)
        self.assertFalse(due.active())
        self.assertRaises(AlreadyCalled, due.cancel)

    def test_call_cancels_a_later_one_in_the_same_tick(self) -> None:
        """A call may cancel another call due in the same tick: that one does not run."""
        later = self.ticker.callLater(1.5, self.ran.append, "later")
        self.ticker.callLater(1, lambda: later.cancel())
        self.clock.advance(2)
        self.assertEqual(self.ran, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_call_schedules_another(self) -> None:
        """A call may schedule another (even at once): it runs after every call of this tick."""

        def first() -> None:
            self.ticker.callLater(0, self.ran.append, "next")
            self.ran.append("first")

        self.ticker.callLater(1, first)
        self.ticker.callLater(1, self.ran.append, "second")
        self.clock.advance(1)
        self.assertEqual(self.ran, ["first", "second", "next"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failure_is_logged_and_others_run(self) -> None:
        """A call that raises is logged; the other calls of the tick still run."""
        self.ticker.callLater(1, lambda: 1 / 0)
        self.ticker.callLater(1, self.ran.append, "after")
        self.clock.advance(1)
        self.assertEqual(self.ran, ["after"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_compacts_cancelled_calls(self) -> None:
        """Many cancelled calls do not stay in the heap while a few others are pending."""
        self.ticker.callLater(10, self.ran.append, "kept")
        for due in [self.ticker.callLater(5, self.ran.append, i) for i in range(COMPACT_AFTER * 2)]:
            due.cancel()
        self.assertLessEqual(len(self.ticker._heap), COMPACT_AFTER + 1)
        self.clock.advance(10)
        self.assertEqual(self.ran, ["kept"])


class SharedTickerTests(unittest.TestCase):
    """Executors on one ticker: paced as on a bare clock, with one timer between them."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.ticker = Ticker(self.clock)

    def stream(self, request: FakeRequest) -> Executor:
        """An executor of four paced events on the ticker, started."""
        steps = [Event(b"a"), Wait(1), Event(b"b", first_token=True), Wait(1), Event(b"c"), Wait(1), Event(b"d")]
        executor = Executor(request, self.ticker, steps, exchange(), no_timing)
        self.done = executor.run()
        return executor

    def test_many_streams_one_timer(self) -> None:
        """A hundred streams waiting keep one timer on the clock, and all are paced on time."""
        requests = [FakeRequest() for _ in range(100)]
        for request in requests:
            self.stream(request)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        self.assertEqual({tuple(r.written) for r in requests}, {(b"a", b"b")})
        self.clock.pump([1, 1])
        self.assertEqual({tuple(r.written) for r in requests}, {(b"a", b"b", b"c", b"d")})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pause_and_resume(self) -> None:
        """A paused executor writes nothing on its tick, and carries on when resumed."""
        request = FakeRequest()
        executor = self.stream(request)
        executor.pauseProducing()
        self.clock.advance(1)
        self.assertEqual(request.written, [b"a"])
        executor.resumeProducing()
        self.assertEqual(request.written, [b"a", b"b"])

    def test_client_gone(self) -> None:
        """A client that leaves cancels its call: nothing runs for it and no timer is left."""
        gone, kept = FakeRequest(), FakeRequest()
        self.stream(gone)
        gone_done = self.done
        self.stream(kept)
        gone_done.cancel()
        self.failureResultOf(gone_done)
        self.assertEqual(self.ticker.pending(), 1)
        self.clock.pump([1, 1, 1])
        self.assertEqual(gone.written, [b"a"])
        self.assertEqual(kept.written, [b"a", b"b", b"c", b"d"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class NoDriftTests(unittest.TestCase):
    """A wait that follows another counts from when that one was due (on a ticker or a bare clock)."""

    def start(self, scheduler_of) -> tuple[Clock, FakeRequest, Executor]:
        """Four events a second apart on ``scheduler_of(clock)``, started at time 0."""
        clock, request = Clock(), FakeRequest()
        steps = [Event(b"a"), Wait(1), Event(b"b"), Wait(1), Event(b"c"), Wait(1), Event(b"d")]
        executor = Executor(request, scheduler_of(clock), steps, exchange(), no_timing)
        executor.run()
        return clock, request, executor

    def test_late_tick_shortens_the_next_pause(self) -> None:
        """A tick run 0.3 s late leaves 0.7 s to the next event: the stream still ends at 3 s."""
        for scheduler_of in (Ticker, lambda clock: clock):
            clock, request, _ = self.start(scheduler_of)
            clock.advance(1.3)
            self.assertEqual(request.written, [b"a", b"b"])
            clock.advance(0.7)
            self.assertEqual(request.written, [b"a", b"b", b"c"])
            clock.advance(1)
            self.assertEqual(request.written, [b"a", b"b", b"c", b"d"])
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_very_late_tick_sends_the_next_at_once(self) -> None:
        """A tick run later than the whole next pause sends the next event at once, and no sooner than that."""
        clock, request, _ = self.start(Ticker)
        clock.advance(2.5)
        self.assertEqual(request.written, [b"a", b"b", b"c"])
        clock.advance(0.4)
        self.assertEqual(request.written, [b"a", b"b", b"c"])
        clock.advance(0.1)
        self.assertEqual(request.written, [b"a", b"b", b"c", b"d"])

    def test_after_a_pause_from_now(self) -> None:
        """After the transport paused, the next wait counts from when the stream resumed."""
        clock, request, executor = self.start(Ticker)
        executor.pauseProducing()
        clock.advance(1.5)
        executor.resumeProducing()
        self.assertEqual(request.written, [b"a", b"b"])
        clock.advance(0.9)
        self.assertEqual(request.written, [b"a", b"b"])
        clock.advance(0.1)
        self.assertEqual(request.written, [b"a", b"b", b"c"])
