"""
A private reactor in a thread, serving test servers to blocking clients.

The pytest fixture cannot serve a blocking client (the ``openai`` SDK, ``httpx``) from the
test's own thread, and under pytest-twisted that thread is running the global reactor's
greenlet.  :class:`ReactorThread` runs a reactor of its own, never installed as the global
one, in a daemon thread; each server is started and read through
``blockingCallFromThread``.  Its reactor does not claim the process's "I/O thread" (the
global reactor keeps it); its servers' TLS batches writes on it (see :func:`private_reactor`).
"""

from __future__ import annotations

import select
import threading
from typing import Any, Callable

from twisted.internet.threads import blockingCallFromThread

#: How long stopping waits for the thread to end, in seconds.
_JOIN_S = 10.0


def _reactor_base() -> type:
    """The reactor class to run in the thread: poll where there is ``poll``, else select."""
    if hasattr(select, "poll"):
        from twisted.internet.pollreactor import PollReactor

        return PollReactor
    from twisted.internet.selectreactor import SelectReactor

    return SelectReactor


def private_reactor() -> Any:
    """A new reactor for a thread of its own (not installed as ``twisted.internet.reactor``).

    Its servers' TLS batches writes on it, not on the global reactor: the servers listen through
    :class:`~mockllm.http.eager.EagerListening`, whose ``listenSSL`` times TLS by the reactor it wraps.
    """

    class PrivateReactor(_reactor_base()):
        """Leaves the global reactor's I/O thread alone."""

        _registerAsIOThread = False

    return PrivateReactor()


class ReactorThread:
    """A private reactor running in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.reactor = private_reactor()
        self._thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, name="mockllm-reactor", daemon=True
        )

    def start(self) -> "ReactorThread":
        """Start the thread; returns itself."""
        self._thread.start()
        return self

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the reactor's thread; its result (a Deferred's, once it fires)."""
        return blockingCallFromThread(self.reactor, function, *args)

    def serve(self, options: Any, relative_to: str | None = None) -> tuple[Any, Callable[[], None]]:
        """Start a server on this reactor; the handle and a blocking function that stops it."""
        from mockllm.testing.running import start

        server, stop = self.call(start, options, self.reactor, self.call, relative_to)
        return server, lambda: self.call(stop)

    def stop(self) -> None:
        """Stop the reactor and wait for the thread."""
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(_JOIN_S)
