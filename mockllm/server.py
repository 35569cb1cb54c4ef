"""
Composition: the whole server built from a configuration, by constructor, in one place.

:func:`listen_descriptions` turns the configuration's listeners (``[server] http_port`` and
``port``, ``[tls]``) into endpoint strings; :func:`build` makes the observers, the admin
API, the app, the site and one listener service per endpoint, and returns them under one
``MultiService``; stopping it stops the listeners and drains the site's open connections
(:class:`~mockllm.http.drain.GracefulStop`).  ``tap.makeService`` calls it with what the
command line says.
"""

from __future__ import annotations

import gc
import random
from typing import TYPE_CHECKING, Sequence

from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.web.resource import IResource

from mockllm.admin.access import AdminAccess
from mockllm.behaviour.ratelimit import RateLimiter
from mockllm.behaviour.rules import RuleBook, RuleError
from mockllm.behaviour.scenarios import ScenarioRunner, define, discover
from mockllm.config import Config, ObserveConfig
from mockllm.frozen import Frozen, frozen
from mockllm.http.connlimit import ConnectionLimit
from mockllm.http.drain import GracefulStop
from mockllm.http.eager import eager_listening
from mockllm.http.exchanges import Lifecycle, StoppingMarker
from mockllm.http.lazy import OnFirstUse
from mockllm.http.listen import ListenerService, http_announcement
from mockllm.http.routes import MockLLM, route_templates
from mockllm.http.site import MockSite
from mockllm.observe.console import ConsoleLog
from mockllm.observe.exchange import ExchangeObserver
from mockllm.observe.journal import Journal
from mockllm.observe.metrics import Metrics
from mockllm.observe.record import Recorder
from mockllm.startup import StartFailed
from mockllm.tls.identity import PeerIdentities
from mockllm.tls.interfaces import IMTLSEndpoint, TLSConfigError

if TYPE_CHECKING:
    from mockllm.observe.requestlog import RequestLog
    from mockllm.tls.reload import ReloadGroup


@frozen(slots=False)
class Listener(Frozen):
    """One endpoint to serve: its string and how start-up messages name it."""

    description: str
    label: str


def listen_descriptions(config: Config) -> list[Listener]:
    """The configuration's plain HTTP and mTLS listeners as endpoint strings (the shorthand options)."""
    server, tls = config.server, config.tls
    host = quoteStringArgument(server.host)
    listeners = []
    if server.http_port is not None:
        kind = "tcp6" if ":" in server.host else "tcp"
        listeners.append(Listener(
            f"{kind}:{server.http_port}:interface={host}:backlog={server.backlog}",
            f"HTTP on {server.host}:{server.http_port}",
        ))
    if server.port is not None:
        options = [
            f"mtls:{server.port}",
            f"interface={host}",
            f"backlog={server.backlog}",
            f"certsDir={quoteStringArgument(tls.certs_dir)}",
            f"clientCert={'required' if tls.require_client_cert else 'optional'}",
        ]
        if tls.cert_path is not None:
            options.append(f"certKey={quoteStringArgument(tls.cert_path)}")
        if tls.key_path is not None:
            options.append(f"privateKey={quoteStringArgument(tls.key_path)}")
        if tls.ca_cert_path is not None:
            options.append(f"caCerts={quoteStringArgument(','.join(tls.ca_cert_path))}")
        if tls.fault is not None:
            options.append(f"fault={tls.fault}")
        listeners.append(Listener(":".join(options), f"HTTPS (mTLS) on {server.host}:{server.port}"))
    return listeners


@frozen(slots=False)
class Observers(Frozen):
    """The observing pieces of one server: journal, metrics, request log, console."""

    journal: Journal
    metrics: Metrics
    request_log: RequestLog | None = None
    console: bool = True

    @classmethod
    def from_config(cls, observe: ObserveConfig, console: bool = True) -> "Observers":
        """The pieces ``observe`` asks for."""
        log = None
        if observe.request_log:
            from mockllm.observe.requestlog import RequestLog  # only a request log needs it (and Twisted's logfile)

            log = RequestLog(observe.request_log, observe.request_log_max_bytes, observe.request_log_keep)
        return cls(Journal(observe.journal_size), Metrics(route_templates()), log, console)

    def observers(self) -> list[ExchangeObserver]:
        """Metrics, the journal, the recorder feeding the request log (if any), and the console log."""
        found: list[ExchangeObserver] = [self.metrics, self.journal]
        if self.request_log is not None:
            found.append(Recorder([self.request_log.add]))
        if self.console:
            found.append(ConsoleLog())
        return found


#: The collector's thresholds while ``twist mockllm`` runs: Python's own for the young generations
#: (700 new objects, 10 young collections), full collections a hundred times rarer than Python's 10.
COLLECTOR_THRESHOLDS = (700, 10, 1000)


class ServerCollector(Service):
    """Tunes the cyclic garbage collector for a server that holds many live objects, and thaws it on stop.

    On start it freezes every object alive (``gc.freeze``): what start-up made (modules, classes, the
    composed app) stays for the life of the process, and frozen, no collection walks it again.  It also
    makes full collections rarer (:data:`COLLECTOR_THRESHOLDS`): an open stream holds about a hundred
    tracked objects, and while 10,000 streams opened a full collection walked every one of them (one
    pause of ~400 ms, for nothing: no open stream is garbage, and a finished one leaves no cycle, its
    objects go by reference counting).  With full collections a hundred times rarer than Python's
    default none comes while they open.  Young collections stay as Python makes them; cycles that
    long-lived connections leave behind wait longer for their collection.  Only ``twist mockllm``
    adds it (the test kit's servers leave their process's collector alone).
    """

    def __init__(self, thresholds: tuple[int, int, int] = COLLECTOR_THRESHOLDS) -> None:
        self._thresholds = thresholds
        self._before = gc.get_threshold()
        self._was_enabled = gc.isenabled()

    def startService(self) -> None:
        """Freeze (a constant-time move: a full collection first would hold the first accept back ~30 ms,
        for the few cycles start-up leaves), set the thresholds and turn the collector on (the
        ``twist`` plugin pauses it while mockllm starts)."""
        super().startService()
        gc.freeze()
        gc.set_threshold(*self._thresholds)
        gc.enable()

    def stopService(self) -> None:
        """Give the collector back as it was: the frozen objects, its thresholds, on or off."""
        gc.set_threshold(*self._before)
        gc.unfreeze()
        if not self._was_enabled:
            gc.disable()
        return super().stopService()


def build(
    config: Config,
    reactor: object,
    scenarios: object,
    observers: Observers,
    access: AdminAccess | None,
    listen: Sequence[Listener] = (),
    seed: int | None = None,
) -> tuple[MultiService, MockLLM]:
    """The server: a ``MultiService`` of its services (listeners last), and its app.

    ``listen``: endpoints to serve (default: the configuration's); ``access``: who may use the
    admin API (``None``: no admin API).  Raises :class:`StartFailed` naming a listener whose
    endpoint cannot be built (bad TLS material, an unknown endpoint type).
    """
    top = MultiService()
    lifecycle = Lifecycle()
    StoppingMarker(lifecycle).setServiceParent(top)
    endpoints = [(_endpoint(reactor, listener), listener) for listener in (listen or listen_descriptions(config))]
    secured = [endpoint.tls for endpoint, _ in endpoints if IMTLSEndpoint.providedBy(endpoint)]
    server_tls, reloading = _tls_reload(secured, reactor) if secured else (None, None)
    peers = PeerIdentities()
    rate_limits = RateLimiter(config.models.limits_of)
    try:
        rules = RuleBook.of(config.rules, config.responses, random.Random())
    except RuleError as error:
        raise StartFailed(f"mockllm: {error}") from None
    admin = None
    if access is not None:
        admin = OnFirstUse(lambda: admin_resource(observers.journal, scenarios, access, server_tls, peers, rate_limits, rules))
    app = MockLLM(
        config, reactor, rng=random.Random(seed), scenarios=scenarios, peers=peers,
        observers=observers.observers(), admin=admin, metrics=observers.metrics, lifecycle=lifecycle,
        rate_limits=rate_limits, rules=rules,
    )
    server = config.server
    site = MockSite(
        app.resource(), server.max_body_bytes, app.record, reactor, server.idle_timeout_s, server.header_timeout_s
    )
    # On stop, the listeners stop accepting while the open connections drain (up to the grace).
    GracefulStop(site.connections, server.shutdown_grace_s).setServiceParent(top)
    factory = ConnectionLimit(site, server.max_connections, reactor, app.record, observers.metrics.handshake)
    if observers.request_log is not None:
        observers.request_log.setServiceParent(top)
    announce_http = http_announcement(example_body(config))
    for endpoint, listener in endpoints:
        announce = endpoint.announce if IMTLSEndpoint.providedBy(endpoint) else announce_http
        ListenerService(endpoint, factory, listener.label, announce).setServiceParent(top)
    if reloading is not None:
        reloading.setServiceParent(top)
    return top, app


def _tls_reload(secured: Sequence[object], reactor: object) -> tuple[ReloadGroup, Service]:
    """The mTLS listeners' TLS reloaded together, and the service reloading it on SIGHUP (imported
    only when something listens with mTLS)."""
    from mockllm.tls.reload import ReloadGroup, TLSReloadService

    group = ReloadGroup(secured)
    return group, TLSReloadService(group, reactor)


def admin_resource(
    journal: Journal, scenarios: object, access: AdminAccess, tls: ReloadGroup | None, peers: PeerIdentities,
    rate_limits: RateLimiter, rules: RuleBook,
) -> IResource:
    """The admin API's resource (its module is imported here, when the first admin request comes)."""
    from mockllm.admin.api import Admin

    return Admin(journal, scenarios, access, tls, peers, rate_limits=rate_limits, rules=rules).resource()


def default_scenarios(config: Config, clock: object, current: str = "default", seed: int | None = None) -> ScenarioRunner:
    """A scenario runner over the built-in scenarios and the configuration's ``[scenarios.NAME]``."""
    return ScenarioRunner(define(discover().scenarios, config.scenarios), clock, current, seed, config.responses)


def _endpoint(reactor: object, listener: Listener) -> object:
    """The endpoint ``listener`` describes, listening through :func:`~mockllm.http.eager.eager_listening`;
    :class:`StartFailed` naming it if it cannot be made."""
    try:
        return serverFromString(eager_listening(reactor), listener.description)
    except TLSConfigError as error:
        raise StartFailed(f"mockllm: HTTPS: {error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise StartFailed(f"mockllm: cannot listen on {listener.description!r}: {error}") from None


def example_body(config: Config) -> str:
    """The request body the start-up curl hints send: a served model, one message."""
    return '{"model": "%s", "messages": [{"role": "user", "content": "Hello"}]}' % config.models.available[0]
