"""
Stopping gracefully: :class:`OpenConnections` (the site's open connections, drained when the
server stops), :class:`GracefulStop` (the service that drains them) and :class:`TermStops`
(``SIGTERM`` stops the server with exit status 0).

When the server stops, the listeners stop accepting and :meth:`OpenConnections.drain`:

- closes at once every connection with no request in flight (idle keep-alive connections,
  half-sent requests);
- closes at once every connection whose answer is only waiting past the grace period (a
  ``fail=timeout`` or ``fail=stall`` hold, a long ``delay=``): the grace would cut it anyway;
- lets every other answer finish (then closes its connection), for up to ``grace_s`` seconds,
  and then aborts the connections still open (what they still had buffered is dropped).

Its Deferred fires once every connection is gone, so the reactor (which waits for a
service's ``stopService`` Deferred) exits only then: every exchange has ended and been
written to the request log.
"""

from __future__ import annotations

import signal
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger


class Drainable(Protocol):
    """A connection :class:`OpenConnections` can drain (a :class:`~mockllm.http.site.MockChannel`)."""

    def wind_down(self, deadline: float) -> None:
        """The server stops: close now if nothing would finish by ``deadline``, else after the answer."""

    def cut(self) -> None:
        """The grace is over: abort the connection (dropping what is still buffered)."""


class OpenConnections:
    """The open connections of a site; :meth:`drain` ends them when the server stops."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._open: set[Drainable] = set()
        #: Made by :meth:`drain`; fires once no connection is left.
        self._drained: Deferred[None] | None = None
        self._cut_timer: IDelayedCall | None = None

    def __len__(self) -> int:
        """How many connections are open."""
        return len(self._open)

    @property
    def draining(self) -> bool:
        """Whether the server is stopping (a finished answer then closes its connection)."""
        return self._drained is not None

    def opened(self, connection: Drainable) -> None:
        """A connection was made."""
        self._open.add(connection)

    def closed(self, connection: Drainable) -> None:
        """A connection was lost."""
        self._open.discard(connection)
        self._fire_if_empty()

    def drain(self, grace_s: float) -> Deferred[None]:
        """End every connection: idle and waiting ones now, the rest when answered or after ``grace_s``."""
        if self._drained is not None:
            return self._drained
        self._drained = Deferred()
        deadline = self._clock.seconds() + grace_s
        for connection in list(self._open):
            connection.wind_down(deadline)
        if self._open:
            self._cut_timer = self._clock.callLater(grace_s, self._cut)
        self._fire_if_empty()
        return self._drained

    def _cut(self) -> None:
        self._cut_timer = None
        for connection in list(self._open):
            connection.cut()

    def _fire_if_empty(self) -> None:
        drained = self._drained
        if drained is None or self._open or drained.called:
            return
        if self._cut_timer is not None and self._cut_timer.active():
            self._cut_timer.cancel()
        self._cut_timer = None
        drained.callback(None)


class GracefulStop(Service):
    """Drains ``connections`` when the server stops; the stop waits for it (at most ``grace_s`` and a moment)."""

    def __init__(self, connections: OpenConnections, grace_s: float) -> None:
        self.connections = connections
        self.grace_s = grace_s

    def stopService(self) -> Deferred[None]:
        """Drain the open connections; the Deferred fires when none is left."""
        super().stopService()
        return self.connections.drain(self.grace_s)


class TermStops(Service):
    """While running, ``SIGTERM`` stops the reactor as a request to stop, so the process exits 0.

    Twisted's own handler remembers the signal and re-raises it once stopped (exit status
    -15); a server stopped on purpose that let its requests finish has not failed.  The
    handler is installed once the reactor runs (Twisted installs its own at start-up) and
    the previous one is put back when the service stops, unless a SIGTERM is what stops it
    (a second one while the requests drain is then ignored, not turned into exit status -15).
    """

    log = Logger()

    def __init__(self, reactor: object, grace_s: float) -> None:
        self.reactor = reactor
        self.grace_s = grace_s
        self._previous: object = None
        self._received_term = False

    def startService(self) -> None:
        """Install the handler as soon as the reactor runs."""
        super().startService()
        self.reactor.callWhenRunning(self._install)

    def _install(self) -> None:
        if self.running:
            self._previous = signal.signal(signal.SIGTERM, self._received)

    def _received(self, number: int, frame: object) -> None:
        """SIGTERM: log it and stop the reactor (from the signal handler, as Twisted does)."""
        self._received_term = True
        self.log.info("mockllm: SIGTERM: stopping; requests in flight have {grace} s to finish", grace=self.grace_s)
        self.reactor.callFromThread(self._stop)

    def _stop(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:  # a second SIGTERM while draining: the first one is being obeyed
            pass

    def stopService(self) -> None:
        """Put the previous SIGTERM handler back (unless a SIGTERM is why the server stops)."""
        super().stopService()
        if self._previous is not None and not self._received_term:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
