"""
The executor: runs one answer's script of steps on a request, on the injected clock.

:class:`Executor` is an ``IPushProducer``.  It pulls steps lazily from the script (an open
stream holds one rendered event, not the whole reply), writes bytes, waits on the clock,
holds back while the transport is paused, and ends the answer as the script says: normally
(the Deferred from :meth:`Executor.run` fires and Klein finishes the request), by closing the
connection (FIN) or by resetting it (RST).  A reset after bytes went out first waits (on the
clock, polling every :data:`FLUSH_POLL_S` for at most :data:`FLUSH_LIMIT_S`) until they have left
the machine, since an abort drops whatever is still buffered.  It registers itself as the request's producer
only once the script waits or streams, and unregisters before the answer ends.  Cancelling
the Deferred (Klein does so when the client goes away) cancels the pending timer and
unregisters the producer; the request is never finished after a disconnect.

Waits do not drift: a wait that follows straight on from the end of another counts from when
that one was due, not from when its timer happened to run, so a stream of N pauses of I
seconds lasts N × I even when the process runs late (a tick that ran late makes the next pause
shorter; one that ran later than the whole next pause sends the next event at once).  A wait
after anything else (the first one, one after the transport paused) counts from now.

Its time is a :class:`~mockllm.behaviour.ticker.Scheduler`: the app gives it the server's
:class:`~mockllm.behaviour.ticker.Ticker` (one timer for every waiting answer), a test may give
it a bare ``task.Clock``.  An open stream holds little: the executor (slotted), the script's
generators and the request.
"""

from __future__ import annotations

import socket
import struct
from typing import Callable, Iterable, Iterator, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.iweb import IRequest
from zope.interface import implementer

from mockllm.behaviour.steps import (
    Abort,
    Close,
    FINISH,
    Count,
    Event,
    Finish,
    HeaderPairs,
    Head,
    Step,
    Wait,
    Write,
    reason_phrase,
)
from mockllm.behaviour.ticker import Pending, Scheduler
from mockllm.headers import set_headers
from mockllm.transport import handle_under, unsent_bytes

_LINGER_ZERO = struct.pack("ii", 1, 0)
#: How often a reset checks whether the bytes already written have left, in seconds.
FLUSH_POLL_S = 0.005
#: The longest a reset waits for them (a client that reads nothing would hold it forever).
FLUSH_LIMIT_S = 2.0


class Progress(Protocol):
    """What the executor keeps up to date as the answer goes out (an exchange)."""

    started: float
    status: int | None
    first_byte_at: float | None
    first_token_at: float | None
    events_sent: int
    completion_tokens: int
    outcome: str | None
    response_body: bytes | None
    waiting_until: float | None


@implementer(IPushProducer)
class Executor:
    """Runs ``steps`` on ``request``; ``timing_headers(elapsed)`` adds the dialect's timing headers,
    and the script's ``Head`` gets ``defaults`` too, except the headers it gives itself.

    ``clock`` is a scheduler: a :class:`~mockllm.behaviour.ticker.Ticker` or a bare clock.
    """

    __slots__ = (
        "_request", "_clock", "_steps", "_progress", "_timing_headers", "_defaults", "_paused", "_registered",
        "_ended", "_timer", "_done", "_finished", "_flush_since", "_origin",
    )

    def __init__(
        self,
        request: IRequest,
        clock: Scheduler,
        steps: Iterable[Step],
        progress: Progress,
        timing_headers: Callable[[float], HeaderPairs],
        defaults: HeaderPairs = (),
    ) -> None:
        self._request = request
        self._clock = clock
        self._steps: Iterator[Step] = iter(steps)
        self._progress = progress
        self._timing_headers = timing_headers
        self._defaults = defaults
        self._paused = False
        self._registered = False
        self._ended = False
        self._timer: Pending | None = None
        #: Made only once the script has to wait (most answers run at once).
        self._done: Deferred[bytes] | None = None
        #: The script reached ``Finish`` (not ``Close``/``Abort``, which leave the end to Klein's cancel).
        self._finished = False
        #: When a pending reset started waiting for the written bytes to leave.
        self._flush_since: float | None = None
        #: While a wait's tick runs the steps after it: when that wait was due (the next wait counts from there).
        self._origin: float | None = None

    def run(self) -> bytes | Deferred[bytes]:
        """Start; ``b""`` if the whole script ran at once, else a Deferred firing when the answer ends."""
        self._advance()
        if self._finished:
            return b""
        self._done = Deferred(self._cancel)
        return self._done

    def _advance(self) -> None:
        """Run steps until one waits, the transport pauses, or the answer ends."""
        steps, run = self._steps, _RUN
        while not (self._paused or self._timer is not None or self._ended):
            step = next(steps, FINISH)
            run[type(step)](self, step)

    def _wait(self, step: Wait) -> None:
        if step.seconds > 0:
            if not self._registered:
                self._register()
            now, origin = self._clock.seconds(), self._origin
            until = (now if origin is None else origin) + step.seconds
            self._timer = self._clock.callLater(max(0.0, until - now), self._tick, until)
            self._progress.waiting_until = until

    def _count(self, step: Count) -> None:
        self._progress.completion_tokens = step.completion_tokens

    def _finish(self, step: Finish) -> None:
        self._finished = True
        self._end(step.outcome)
        if self._done is not None:
            self._done.callback(b"")

    def _tick(self, due: float) -> None:
        """A wait that was ``due`` then is over: run on from it (the next wait counting from ``due``)."""
        self._timer = None
        self._progress.waiting_until = None
        if not self._paused:
            self._origin = due
            try:
                self._advance()
            finally:
                self._origin = None

    def _write(self, step: Write) -> None:
        """Write body bytes (kept as the exchange's response body)."""
        data = step.data
        if data:
            progress = self._progress
            body = progress.response_body
            progress.response_body = data if body is None else body + data
        self._request.write(data)

    def _head(self, step: Head) -> None:
        request, now = self._request, self._clock.seconds()
        progress = self._progress
        progress.status = step.status
        progress.first_byte_at = now
        request.setResponseCode(step.status, reason_phrase(step.status))
        headers = step.headers
        set_headers(request, headers)
        if self._defaults:
            given = {name.lower() for name, _ in headers}
            set_headers(request, [pair for pair in self._defaults if pair[0] not in given])
        set_headers(request, self._timing_headers(now - progress.started))

    def _event(self, step: Event) -> None:
        if not self._registered:
            self._register()
        progress = self._progress
        progress.events_sent += step.counted
        if step.first_token and progress.first_token_at is None:
            progress.first_token_at = self._clock.seconds()
        self._request.write(step.data)

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            self._request.registerProducer(self, True)

    def _end(self, outcome: str | None) -> None:
        """Stop for good: unregister, and record ``outcome`` if the script named one."""
        self._ended = True
        if self._registered:
            self._registered = False
            self._request.unregisterProducer()
        if outcome is not None:
            self._progress.outcome = outcome

    def _drop(self, step: Close | Abort) -> None:
        """End by closing (FIN) or resetting (RST) the connection; Klein then cancels the Deferred."""
        transport = self._request.channel.transport
        if isinstance(step, Close):
            self._end(step.outcome)
            transport.loseConnection()
            return
        if self._flushing(transport):
            self._register()
            self._timer = self._clock.callLater(FLUSH_POLL_S, self._flushed, step)
            return
        self._end(step.outcome)
        sock = handle_under(transport, socket.socket)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abortConnection()

    def _flushing(self, transport: object) -> bool:
        """Whether a reset must wait: bytes written are still on their way (and not for too long yet)."""
        if self._progress.first_byte_at is None or not unsent_bytes(transport):
            return False
        now = self._clock.seconds()
        if self._flush_since is None:
            self._flush_since = now
        return now - self._flush_since < FLUSH_LIMIT_S

    def _flushed(self, step: Abort) -> None:
        """Poll again for the bytes a pending reset waits on."""
        self._timer = None
        self._drop(step)

    def _cancel(self, _: Deferred) -> None:
        """The client went away: drop the timer and the producer registration, and close the script."""
        self._paused = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._registered and self._request.channel is not None:
            self._request.unregisterProducer()
        self._registered = False
        self._ended = True
        close = getattr(self._steps, "close", None)
        if close is not None:
            close()  # the script's own clean-up (an open stream stops counting) runs now, not at collection

    # IPushProducer

    def pauseProducing(self) -> None:
        """The transport's buffer is full: run no further step until resumed."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The transport drained: carry on where the script stands."""
        if self._ended:
            return
        self._paused = False
        if self._timer is None:
            self._advance()

    def stopProducing(self) -> None:
        """The connection is closing: stop; Klein cancels the Deferred, which cleans up."""
        self._paused = True


#: What the executor does for each kind of step.
_RUN: dict[type, Callable[[Executor, Step], None]] = {
    Head: Executor._head,
    Write: Executor._write,
    Event: Executor._event,
    Wait: Executor._wait,
    Count: Executor._count,
    Finish: Executor._finish,
    Close: Executor._drop,
    Abort: Executor._drop,
}
