"""
Helpers for the journal, request-log, metrics and admin tests.

:func:`observed_app` builds an app on a ``task.Clock`` (via
``tests.support.make_app``) wired the way ``tap.makeService`` wires a real
server: metrics, a recorder feeding the journal (and a request log, if
given), and the admin API.  :class:`FakeScenarios` is a small switchable
scenario chooser with the admin API's control interface; :class:`ObservedCase`
is a test case base holding an observed streaming app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.trial import unittest

from mockllm.admin.access import AdminAccess
from mockllm.http.routes import MockLLM
from mockllm.config import Config, ResponsesConfig
from mockllm.observe.journal import Journal
from mockllm.observe.metrics import Metrics
from mockllm.server import Observers
from mockllm.http.routes import route_templates
from mockllm.admin.api import Admin
from mockllm.behaviour.scenarios import IScenarioControl
from mockllm.tls.identity import PeerIdentities
from zope.interface import implementer
from mockllm.behaviour.plan import PlanPart, StatusFault
from mockllm.observe.requestlog import RequestLog
from tests.support import CHAT_BODY, RawHTTP, make_app

#: A config whose streams pause 10 ms between chunks.
STREAMING = Config(responses=ResponsesConfig(stream_interval_ms=10))
PATH = "/v1/chat/completions"
STREAM_BODY = {**CHAT_BODY, "stream": True}


@implementer(IScenarioControl)
class FakeScenarios:
    """Scenarios ``calm`` (no opinion) and ``broken`` (status ``params["status"]``, default 503)."""

    def __init__(self) -> None:
        self.name = "calm"
        self.params: dict[str, Any] = {}
        self.resets = 0

    @property
    def current(self) -> str:
        """The current scenario's name."""
        return self.name

    def switch(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        """Switch; ``KeyError`` for an unknown name, ``ValueError`` for a bad status."""
        if name not in ("calm", "broken"):
            raise KeyError(f"unknown scenario {name!r}; known scenarios: broken, calm")
        params = dict(params or {})
        if not isinstance(params.get("status", 503), int):
            raise ValueError("scenario 'broken': 'status' must be an integer")
        self.name, self.params = name, params

    def reset(self) -> None:
        """Count resets."""
        self.resets += 1

    def describe(self) -> dict[str, Any]:
        """Name and parameters."""
        return {"name": self.name, "parameters": self.params, "available": ["broken", "calm"]}

    def plan(self, request: object, caller: object) -> tuple[str, PlanPart]:
        """``broken`` fails every request; ``calm`` has no opinion."""
        if self.name == "broken":
            return self.name, PlanPart(fault=StatusFault(self.params.get("status", 503)))
        return self.name, PlanPart()


@dataclass
class Observed:
    """An app with its clock and observing pieces."""

    app: MockLLM
    clock: Clock
    journal: Journal
    metrics: Metrics
    scenarios: FakeScenarios


def observed_app(
    config: Config | None = None,
    request_log: RequestLog | None = None,
    access: AdminAccess | None = None,
    admin: bool = True,
    journal_size: int = 100,
    **kwargs: Any,
) -> Observed:
    """An app on a ``task.Clock`` wired like ``mockllm.server.build`` wires one.

    ``server_tls`` goes to the admin API; ``observers`` replace the standard ones; the other
    ``kwargs`` go to :class:`MockLLM`.
    """
    scenarios = kwargs.pop("scenarios", None) or FakeScenarios()
    server_tls = kwargs.pop("server_tls", None)
    if admin and access is None:
        access = AdminAccess()
    pieces = Observers(Journal(journal_size), Metrics(route_templates()), request_log)
    observers = kwargs.pop("observers", None) or pieces.observers()
    peers = PeerIdentities()
    identify = kwargs.get("identify")
    admin_resource = Admin(pieces.journal, scenarios, access, server_tls, peers, identify).resource() if admin else None
    app, clock = make_app(
        config, scenarios=scenarios, observers=observers, admin=admin_resource, metrics=pieces.metrics,
        peers=peers, **kwargs,
    )
    if request_log is not None:
        request_log.setServiceParent(MultiService())
    return Observed(app, clock, pieces.journal, pieces.metrics, scenarios)


class ObservedCase(unittest.TestCase):
    """Base: ``self.o``, an observed app streaming every 10 ms on a clock."""

    def setUp(self) -> None:
        self.o = observed_app(STREAMING)

    def send(self, path: str = PATH, body: object = CHAT_BODY, headers: dict | None = None) -> RawHTTP:
        """One POST on a fresh connection (closed in cleanup)."""
        conn = RawHTTP(self.o.app).send("POST", path, body, headers)
        self.addCleanup(conn.disconnect)
        return conn
