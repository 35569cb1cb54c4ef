"""
Listening: :class:`ListenerService`, one per ``--listen`` endpoint, and what it announces.

Endpoints come from endpoint strings (``tcp:8001:interface=127.0.0.1``, ``unix:/path``,
``mtls:8443``: see :mod:`mockllm.tls.endpoint`).  Each service binds in
``privilegedStartService``; a listener that cannot bind stops the start with one clear
line and a non-zero exit (:class:`StartFailed`), rather than leaving a half-running server.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from mockllm.startup import StartFailed
from mockllm.tls.names import url_host

__all__ = ["ListenerService", "StartFailed", "http_announcement"]


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

    def privilegedStartService(self) -> None:
        """Bind now (before any privileges are dropped)."""
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        """Run; bind first if :meth:`privilegedStartService` was not called."""
        super().startService()
        if self.port is None:
            self._listen()

    def _listen(self) -> None:
        """Listen; raise :class:`StartFailed` with a readable reason if the endpoint cannot be bound."""
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


def http_announcement(body: str) -> Callable[[IListeningPort], str]:
    """A function describing a plain HTTP (TCP or UNIX) listener with a curl command to paste."""

    def announce(port: IListeningPort) -> str:
        address = port.getHost()
        data = f"-H 'Content-Type: application/json' -d '{body}'"
        if isinstance(address, UNIXAddress):
            path = address.name.decode() if isinstance(address.name, bytes) else address.name
            return (
                f"mockllm: HTTP on unix:{path} -- try: curl --unix-socket {path} "
                f"http://localhost/v1/chat/completions {data}"
            )
        host = address.host if isinstance(address, (IPv4Address, IPv6Address)) else "localhost"
        base = f"http://{url_host(host)}:{address.port}"
        return f"mockllm: HTTP on {base} -- try: curl {base}/v1/chat/completions {data}"

    return announce
