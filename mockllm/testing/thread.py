"""
A private reactor in a thread, serving test servers to blocking clients.

The pytest fixture cannot serve a blocking client (the ``openai`` SDK, ``httpx``) from the
test's own thread, and under pytest-twisted that thread is running the global reactor's
greenlet.  :class:`ReactorThread` runs a reactor of its own, never installed as the global
one, in a daemon thread; each server is started and read through
``blockingCallFromThread``.  Its reactor does not claim the process's "I/O thread" (the
global reactor keeps it) and batches TLS writes on itself rather than on the global reactor.
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
    """A new reactor for a thread of its own (not installed as ``twisted.internet.reactor``)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    class PrivateReactor(_reactor_base()):
        """Leaves the global reactor's I/O thread alone; TLS write batching uses this reactor."""

        _registerAsIOThread = False

        def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):
            """TLS over TCP, timed by this reactor (Twisted's default times it by the global one)."""
            listening = self.listenTCP(port, TLSMemoryBIOFactory(contextFactory, False, factory, self), backlog, interface)
            listening._type = "TLS"
            return listening

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
