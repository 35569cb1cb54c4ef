"""
The server-sent-events producer: writes events on timers, one at a time.

:class:`EventStream` is an ``IPushProducer`` registered on the request.  It
pulls ``(pause, event)`` pairs lazily from an iterator (so an open stream
holds one rendered event, not the whole reply), waits each pause on the
injected clock, holds back while the transport is paused, and ends by
firing the Deferred returned from :meth:`EventStream.start` (the Klein route
returns it, and Klein finishes the request).  Cancelling that Deferred
(Klein does so when the client goes away) cancels the pending timer and
unregisters the producer; the request is never finished after a disconnect.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.web.iweb import IRequest
from zope.interface import implementer

from mockllm.plan import StreamTiming


@implementer(IPushProducer)
class EventStream:
    """Writes each ``event`` after its ``pause`` (seconds), in order."""

    def __init__(
        self,
        request: IRequest,
        clock: IReactorTime,
        items: Iterable[tuple[float, bytes]],
        watch: int = 0,
        progress: Any = None,
    ) -> None:
        self._request = request
        self._clock = clock
        self._items: Iterator[tuple[float, bytes]] = iter(items)
        #: The event pulled from ``items`` and not yet written.
        self._pending: bytes | None = None
        self._paused = False
        self._due = False
        self._timer: IDelayedCall | None = None
        self._done: Deferred[int] = Deferred(self._cancel)
        #: How many events have been written so far.
        self.sent = 0
        self._watch = watch
        #: Clock time at which event number ``watch`` (0-based) was written, or ``None``.
        self.watched_at: float | None = None
        #: Kept up to date with ``events_sent`` and ``first_token_at`` as events go out (the
        #: request's :class:`~mockllm.exchange.Exchange`), so it is right however the stream ends.
        self._progress = progress

    def start(self) -> Deferred[int]:
        """Register as the request's producer and begin; fires with the event count at the end."""
        self._request.registerProducer(self, True)
        self._schedule()
        return self._done

    def _schedule(self) -> None:
        """Write every event that is due now; set a timer for the next one."""
        while not (self._paused or self._timer is not None or self._done.called):
            item = next(self._items, None)
            if item is None:
                self._request.unregisterProducer()
                self._done.callback(self.sent)
                return
            pause, self._pending = item
            if pause > 0:
                self._timer = self._clock.callLater(pause, self._tick)
                return
            self._write_pending()

    def _tick(self) -> None:
        self._timer = None
        if self._paused:
            self._due = True
            return
        self._write_pending()
        self._schedule()

    def _write_pending(self) -> None:
        event, self._pending = self._pending, None
        if self.sent == self._watch:
            self.watched_at = self._clock.seconds()
        self.sent += 1
        if self._progress is not None:
            self._progress.events_sent = self.sent
            self._progress.first_token_at = self.watched_at
        self._request.write(event)

    def _cancel(self, _: Deferred) -> None:
        """The client went away: drop the timer and the producer registration."""
        self._paused = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if getattr(self._request, "channel", None) is not None:
            self._request.unregisterProducer()

    # IPushProducer

    def pauseProducing(self) -> None:
        """The transport's buffer is full: write nothing until resumed (a due event waits)."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The transport drained: write the event that fell due meanwhile, then carry on."""
        if self._done.called:
            return
        self._paused = False
        if self._due:
            self._due = False
            self._write_pending()
        self._schedule()

    def stopProducing(self) -> None:
        """The connection is closing: stop; Klein cancels the Deferred, which cleans up."""
        self._paused = True


def paced(events: Iterable[bytes], timing: StreamTiming, rng: random.Random) -> Iterator[tuple[float, bytes]]:
    """Pair each event with its pause: the first at once, then the TTFT, then the inter-token pause."""
    for i, event in enumerate(events):
        base = 0.0 if i == 0 else timing.first_token if i == 1 else timing.inter_token
        if timing.jitter and base:
            base *= 1 + rng.uniform(-timing.jitter, timing.jitter)
        yield base, event
