"""
:class:`Exchange`: what one request asked and what it got, as it happens.

The app fills one in per request and hands it to its observers (journal,
request log, metrics) when the request starts and when it ends, however it
ends.  Observers must be quick and must not raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from zope.interface import Interface

from mockllm.behaviour.steps import CUT

#: ``Exchange.outcome`` values.
COMPLETED = "completed"
DISCONNECTED = "client-disconnected"
#: The server stopped (SIGTERM) while the request was still being answered.
SHUTDOWN = "server-shutdown"
#: Turned away at once with a 503: ``max_connections`` connections were already being served.
REFUSED = "refused"
#: Cut short by a fault (the engine's ``Finish(CUT)``); re-exported with the other outcomes.
__all__ = ["COMPLETED", "CUT", "DISCONNECTED", "REFUSED", "SHUTDOWN", "Exchange", "ExchangeObserver", "IExchange"]


@dataclass(slots=True)
class Exchange:
    """One request and its answer; times are seconds on the app's clock."""

    request_id: str
    started: float
    method: str
    path: str
    query: str
    client: str
    headers: list[tuple[str, str]]
    body: bytes
    identity: dict[str, Any] | None = None
    key: str = ""
    scenario: str | None = None
    fault: str | None = None
    #: The stream event the fault acts at (1-based; 0: before any event), or ``None`` without a fault.
    fault_at: int | None = None
    #: Why the request was refused (a validation message), if it was.
    error: str | None = None
    status: int | None = None
    response_body: bytes | None = None
    stream: bool = False
    events_sent: int = 0
    completion_tokens: int = 0
    #: The response's ``retry-after-ms`` and ``retry-after`` headers, as sent.
    retry_headers: tuple[tuple[str, str], ...] = ()
    outcome: str | None = None
    first_byte_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    #: While the answer waits (a delay, a hold, a pause between events): when it goes on; else ``None``.
    waiting_until: float | None = None


class ExchangeObserver(Protocol):
    """Something told about every exchange (journal, request log, metrics)."""

    def exchange_started(self, exchange: Exchange) -> None:
        """A request has arrived and been given an id."""

    def exchange_finished(self, exchange: Exchange) -> None:
        """The request has ended: answered, cut by a fault, or abandoned by the client."""


class IExchange(Interface):
    """The component under which a request's :class:`Exchange` is kept on the request."""
