"""
Starting and stopping a test server, composed by :func:`mockllm.server.build` like the real one.

:func:`start` serves plain HTTP (and, when asked, mTLS from a fresh development PKI in a
temporary directory) on port 0 of ``127.0.0.1`` of the given reactor, with the admin API,
the journal and no console lines; it returns the :class:`~mockllm.testing.handle.MockServer`
and the function that stops it.  Stopping closes the SDK clients the handle made, cuts the
connections still open, stops the services, waits until every connection is gone (so a
trial test leaves a clean reactor) and removes the PKI.  :func:`in_memory` builds the same
server with no listener for a ``treq.testing.StubTreq``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.task import deferLater

from mockllm.admin.access import AdminAccess
from mockllm.config import Config, ObserveConfig
from mockllm.http.listen import ListenerService
from mockllm.server import Listener, Observers, build, default_scenarios
from mockllm.testing.handle import Address, Call, MockServer, direct
from mockllm.testing.options import ServerOptions

#: The interface test servers listen on.
HOST = "127.0.0.1"
#: How many reactor turns :func:`start`'s stop waits for aborted connections to go.
_DRAIN_TURNS = 100


def _parts(options: ServerOptions, config: Config, clock: object, listen: list[Listener]):
    """The journal, the scenario runner and the built server (``(top, app)``)."""
    scenarios = default_scenarios(config, clock, options.scenario or "default", options.seed)
    if options.params:
        scenarios.switch(scenarios.current, dict(options.params))
    observers = Observers.from_config(ObserveConfig(), console=False)
    built = build(config, clock, scenarios, observers, AdminAccess(), listen, options.seed)
    return observers.journal, scenarios, built


def start(
    options: ServerOptions, reactor: object, call: Call = direct, relative_to: str | None = None
) -> tuple[MockServer, Callable[[], Deferred]]:
    """Serve on ``reactor`` now; the handle and the function that stops the server.

    Call it on ``reactor``'s thread; ``call`` is how the handle reaches it later.
    """
    config = options.load(relative_to)
    pki = tempfile.mkdtemp(prefix="mockllm-pki-") if options.https else None
    listen = [Listener(f"tcp:0:interface={HOST}", "HTTP")]
    if pki is not None:
        listen.append(Listener(f"mtls:0:interface={HOST}:certsDir={quoteStringArgument(pki)}", "HTTPS (mTLS)"))
    try:
        journal, scenarios, (top, _) = _parts(options, config, reactor, listen)
        top.startService()
    except BaseException:
        if pki is not None:
            shutil.rmtree(pki, ignore_errors=True)
        raise
    listeners = [service for service in top if isinstance(service, ListenerService)]
    server = MockServer(_address(listeners, pki), journal, scenarios, call)
    stopping = _Stopping(reactor, top, listeners, server, pki)
    return server, stopping.stop


def _address(listeners: list[ListenerService], pki: str | None) -> Address:
    """The URLs of the listeners (HTTP first, then mTLS) and the client's material."""
    ports = [service.port.getHost().port for service in listeners]
    url = f"http://{HOST}:{ports[0]}/v1"
    if pki is None:
        return Address(url)
    folder = Path(pki)
    return Address(
        url,
        f"https://{HOST}:{ports[1]}/v1",
        str(folder / "ca.pem"),
        str(folder / "client.pem"),
        str(folder / "client.key"),
    )


class _Stopping:
    """Stops one started server: clients, connections, services, PKI."""

    def __init__(self, reactor: Any, top: Any, listeners: list[ListenerService], server: MockServer, pki: str | None):
        self._reactor = reactor
        self._top = top
        self._factories = [service.factory for service in listeners]
        self._server = server
        self._pki = pki

    def stop(self) -> Deferred:
        """Stop; fires once every connection is gone."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._server.close()
        for factory in self._factories:
            for protocol in list(factory.protocols):
                protocol.transport.abortConnection()
        await maybeDeferred(self._top.stopService)
        for _ in range(_DRAIN_TURNS):
            if not any(factory.protocols for factory in self._factories):
                break
            await deferLater(self._reactor, 0, lambda: None)
        if self._pki is not None:
            shutil.rmtree(self._pki, ignore_errors=True)


def in_memory(options: ServerOptions, clock: object) -> tuple[Any, MockServer]:
    """The server on ``clock`` with no listener, and a ``StubTreq`` over its resource."""
    from treq.testing import StubTreq

    if options.https:
        raise ValueError("an in-memory server has no TLS: https=True needs serve() or the pytest fixture")
    config = options.load()
    server = replace(config.server, http_port=None, port=None)
    journal, scenarios, (_, app) = _parts(options, replace(config, server=server), clock, [])
    return StubTreq(app.resource()), MockServer(Address("http://mockllm.invalid/v1", sockets=False), journal, scenarios)
