"""
The exchange lifecycle: every answered request gets the common headers and an
:class:`~mockllm.observe.exchange.Exchange`, which the observers see start and end.

:class:`Exchanges` keeps a request's exchange as a component of the request
(``IExchange``), never as an attribute.  :class:`Lifecycle` knows whether the server is
stopping, so requests cut by the shutdown are recorded as such; :class:`StoppingMarker`
is the service that tells it.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from mockllm.dialects import IDialect
from mockllm.dialects.openai import request_id
from mockllm.headers import set_headers
from mockllm.http.refusal import client_text
from mockllm.observe.exchange import COMPLETED, DISCONNECTED, SHUTDOWN, Exchange, ExchangeObserver, IExchange


class Lifecycle:
    """Whether the server has started to stop."""

    def __init__(self) -> None:
        self.stopping = False


class StoppingMarker(Service):
    """Tells a :class:`Lifecycle` when the server starts to stop."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def startService(self) -> None:
        """The server runs."""
        super().startService()
        self.lifecycle.stopping = False

    def stopService(self) -> None:
        """The server is stopping: connections still open will be cut by it, not by their clients."""
        self.lifecycle.stopping = True
        return super().stopService()


class Exchanges:
    """Starts each request's exchange and tells the observers when it starts and ends."""

    def __init__(
        self,
        clock: IReactorTime,
        dialect: IDialect,
        identify: Callable[[IRequest], dict[str, Any] | None],
        observers: Iterable[ExchangeObserver] = (),
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self._clock = clock
        self._dialect = dialect
        self._identify = identify
        self.observers = tuple(observers)
        self._lifecycle = lifecycle if lifecycle is not None else Lifecycle()
        #: Ids come from their own generator (seeded from the OS), apart from every seeded one.
        self.ids = random.Random()

    def stamp(self, request: IRequest) -> str:
        """Set the headers every response carries; return the request id."""
        rid = request_id(self.ids)
        set_headers(request, self._dialect.common_headers(rid))
        return rid

    def begin(self, request: IRequest) -> Exchange:
        """Stamp the common headers and start the request's exchange."""
        rid = self.stamp(request)
        observed = bool(self.observers)
        ex = Exchange(
            request_id=rid,
            started=self._clock.seconds(),
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            query=request.uri.partition(b"?")[2].decode("utf-8", "replace"),
            client=client_text(request.getClientAddress()),
            identity=self._identify(request),
            # Only observers (the journal, the request log) read the headers.
            headers=_header_pairs(request) if observed else [],
            body=b"",
        )
        request.setComponent(IExchange, ex)
        if observed:
            for observer in self.observers:
                observer.exchange_started(ex)
            request.notifyFinish().addBoth(self._finished, ex, request)
        return ex

    def of(self, request: IRequest) -> Exchange | None:
        """The request's exchange, if it has begun."""
        return request.getComponent(IExchange)

    def record(self, ex: Exchange) -> None:
        """Tell the observers about an exchange answered below the site (a refusal)."""
        for observer in self.observers:
            observer.exchange_started(ex)
            observer.exchange_finished(ex)

    def _finished(self, result: object, ex: Exchange, request: IRequest) -> None:
        ex.finished_at = self._clock.seconds()
        ex.retry_headers = _retry_headers(request)
        if isinstance(result, Failure) and ex.outcome is None:
            ex.outcome = SHUTDOWN if self._lifecycle.stopping else DISCONNECTED
        elif ex.outcome is None:
            ex.outcome = COMPLETED
        for observer in self.observers:
            observer.exchange_finished(ex)


#: The response headers that tell a client when to retry, as the OpenAI SDK reads them (first wins).
RETRY_HEADERS = ("retry-after-ms", "retry-after")


def _retry_headers(request: IRequest) -> tuple[tuple[str, str], ...]:
    """The retry headers the response carried, as ``(name, value)`` text pairs."""
    headers = request.responseHeaders
    return tuple((name, headers.getRawHeaders(name)[-1]) for name in RETRY_HEADERS if headers.hasHeader(name))


def _header_pairs(request: IRequest) -> list[tuple[str, str]]:
    """The request's headers as ``(name, value)`` text pairs, in arrival order."""
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, vs in request.requestHeaders.getAllRawHeaders()
        for v in vs
    ]
