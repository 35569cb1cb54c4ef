"""
Listening: the quiet :class:`MockSite` and :class:`ListenerService`.

A listener that cannot bind stops the start with one clear line and a
non-zero exit (:class:`StartFailed`), rather than leaving a half-running server.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site


class StartFailed(SystemExit, Exception):
    """
    A service could not start (a listener could not bind, a file could not be opened).
    As a ``SystemExit`` it ends ``twist`` and ``twistd -n``
    with its message and exit status 1, no traceback; as an ``Exception`` it is what a
    daemonizing ``twistd`` catches and reports to the waiting parent (which would wait
    forever for a bare ``SystemExit``).
    """


class MockSite(Site):
    """A ``Site`` without Twisted's access log (mockllm logs each exchange itself)."""

    noisy = False
    displayTracebacks = False

    def log(self, request: object) -> None:
        """No combined-log line per request."""


class ListenerService(Service):
    """Listens on one endpoint while running; says where, and how to try it."""

    log = Logger()

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        factory: object,
        description: str,
        announce: Callable[[IListeningPort], str],
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.announce = announce
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        """Listen now; raise :class:`StartFailed` with a readable reason if the port cannot be bound."""
        super().startService()
        outcome: list[object] = []
        self.endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            raise StartFailed(f"mockllm: {self.description}: the endpoint did not listen synchronously")
        result = outcome[0]
        if isinstance(result, Failure):
            self.running = False
            raise StartFailed(f"mockllm: cannot listen for {self.description}: {result.getErrorMessage()}")
        self.port = result
        self.log.info("{line}", line=self.announce(result))

    def stopService(self) -> Deferred | None:
        """Stop listening (open connections are left to finish)."""
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        return port.stopListening()
