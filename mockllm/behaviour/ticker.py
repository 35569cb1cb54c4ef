"""
The ticker: one timer on the clock for every executor that waits.

Without it each wait of each open stream is a ``callLater`` of its own: 10,000 streams keep
10,000 ``DelayedCall`` objects in the reactor's heap, whose every push and pop compares them
in Python.  A :class:`Ticker` keeps the pending calls in a heap of its own (plain tuples,
compared in C) and a single ``IDelayedCall`` on the injected clock, for the earliest of them;
when it fires, every call that is due by then runs in that one tick, and the timer is set
again for the next.  A tick never runs a call early (a call is due when its deadline is
within :data:`GRAIN` of the clock's time, for float rounding), so a wait is as exact as a
``callLater`` of its own.

It offers the two methods of ``IReactorTime`` that the executor uses, :meth:`Ticker.seconds`
and :meth:`Ticker.callLater`, whose handle (:class:`Due`) can be cancelled as an
``IDelayedCall`` can: the executor runs on a ticker or on a bare clock (``task.Clock`` in
tests) alike.  A cancelled call runs no more and drops what it held at once; when nothing is
pending, the ticker holds no timer on the clock.
"""

from __future__ import annotations

import itertools
import math
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Protocol

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: Seconds by which a deadline may lie past the clock's time and still be due (float rounding only).
GRAIN = 1e-9
#: Cancelled calls kept in the heap before it is rebuilt without them (if they are also most of it).
COMPACT_AFTER = 64


class Pending(Protocol):
    """A call waiting on a scheduler (an ``IDelayedCall``, or a ticker's :class:`Due`)."""

    def active(self) -> bool:
        """Whether it has neither run nor been cancelled."""

    def cancel(self) -> None:
        """Do not run it."""


class Scheduler(Protocol):
    """What the executor needs of time: a clock (``IReactorTime``) or a :class:`Ticker` over one."""

    def seconds(self) -> float:
        """The current time."""

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Pending:
        """Call ``f(*args)`` in ``delay`` seconds."""


class Due:
    """One call pending on a :class:`Ticker`: its deadline, and the function until it runs or is cancelled."""

    __slots__ = ("_ticker", "time", "_f", "_args", "_state")

    def __init__(self, ticker: "Ticker", time: float, f: Callable[..., Any], args: tuple) -> None:
        self._ticker = ticker
        self.time = time
        self._f: Callable[..., Any] | None = f
        self._args = args
        #: ``None`` while pending, then ``"called"`` or ``"cancelled"``.
        self._state: str | None = None

    def getTime(self) -> float:
        """When it is due, in the clock's seconds."""
        return self.time

    def active(self) -> bool:
        """Whether it has neither run nor been cancelled."""
        return self._state is None

    def cancel(self) -> None:
        """Do not run it (``AlreadyCalled``/``AlreadyCancelled`` if too late, as ``IDelayedCall``)."""
        if self._state == "called":
            raise AlreadyCalled()
        if self._state == "cancelled":
            raise AlreadyCancelled()
        self._state, self._f, self._args = "cancelled", None, ()
        self._ticker._cancelled()


class Ticker:
    """Runs every pending call on one timer of ``clock`` (see the module's docstring)."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        #: ``(deadline, order, due)``; cancelled calls stay until popped or compacted.
        self._heap: list[tuple[float, int, Due]] = []
        self._order = itertools.count()
        #: Calls pending and not cancelled.
        self._live = 0
        self._timer: IDelayedCall | None = None
        #: When the timer is set to fire (infinity when there is none).
        self._armed_for = math.inf
        #: While a tick runs its calls: they may schedule more, the timer is set once after them.
        self._ticking = False

    def seconds(self) -> float:
        """The clock's time."""
        return self._clock.seconds()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Due:
        """Run ``f(*args)`` on the first tick at or after ``delay`` seconds from now."""
        due = Due(self, self._clock.seconds() + delay, f, args)
        heappush(self._heap, (due.time, next(self._order), due))
        self._live += 1
        if due.time < self._armed_for and not self._ticking:
            self._arm()
        return due

    def pending(self) -> int:
        """How many calls are pending (not run, not cancelled)."""
        return self._live

    def _cancelled(self) -> None:
        """A pending call was cancelled: forget it; with nothing left, drop the timer too."""
        self._live -= 1
        heap = self._heap
        if not self._live:
            heap.clear()
            if not self._ticking:
                self._arm()
        elif len(heap) - self._live > max(COMPACT_AFTER, self._live):
            heap[:] = [entry for entry in heap if entry[2].active()]
            heapify(heap)

    def _arm(self) -> None:
        """Keep one timer on the clock for the earliest pending call, or none if nothing is pending."""
        heap, timer = self._heap, self._timer
        while heap and not heap[0][2].active():
            heappop(heap)
        if not heap:
            if timer is not None:
                self._timer, self._armed_for = None, math.inf
                timer.cancel()
            return
        when = heap[0][0]
        if when >= self._armed_for:
            return
        delay = max(0.0, when - self._clock.seconds())
        if timer is None:
            self._timer = self._clock.callLater(delay, self._tick)
        else:
            timer.reset(delay)
        self._armed_for = when

    def _tick(self) -> None:
        """The timer fired: run every call due by now (in deadline order), then set the timer again."""
        self._timer, self._armed_for = None, math.inf
        now = self._clock.seconds() + GRAIN
        heap, ready = self._heap, []
        while heap and heap[0][0] <= now:
            ready.append(heappop(heap)[2])
        self._ticking = True
        try:
            for due in ready:
                if due._state is None:  # not cancelled by a call before it in this tick
                    self._run(due)
        finally:
            self._ticking = False
            self._arm()

    def _run(self, due: Due) -> None:
        """Run one due call; a failure is logged and the tick goes on with the others."""
        self._live -= 1
        f, args = due._f, due._args
        due._state, due._f, due._args = "called", None, ()
        try:
            f(*args)
        except Exception:
            self.log.failure("A call on the ticker failed")
