"""
Wiring for ``tap.makeService``: journal, request log, metrics, console log and admin API.

:func:`from_options` reads the ``--request-log*``, ``--journal-size``,
``--admin-from`` and ``--no-admin`` options; :meth:`Observability.attach`
plugs the pieces into a built :class:`~mockllm.app.MockLLM` and puts the
request log (the only piece owning a file) under the server's
``MultiService``, so stopping the server closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from twisted.application.service import MultiService
from twisted.python import usage

from mockllm.admin import Admin, AdminAccess, Network, ScenarioControl, parse_networks
from mockllm.console import ConsoleLog
from mockllm.exchange import ExchangeObserver
from mockllm.journal import DEFAULT_SIZE as JOURNAL_SIZE
from mockllm.journal import Journal
from mockllm.metrics import Metrics
from mockllm.record import Recorder
from mockllm.requestlog import DEFAULT_KEEP, DEFAULT_MAX_BYTES, RequestLog

__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_BYTES", "JOURNAL_SIZE", "Observability", "admin_networks", "from_options"]

_CONTROL = ("current", "switch", "reset", "describe")


def admin_networks(value: str) -> tuple[Network, ...]:
    """Coerce ``--admin-from``: comma-separated CIDRs, or a usage error naming the bad one."""
    try:
        return parse_networks(value)
    except ValueError as error:
        raise usage.UsageError(f"--admin-from: {error}") from None


def scenario_control(chooser: object) -> ScenarioControl | None:
    """``chooser`` if it can be switched and reset at runtime (a ``ScenarioRunner``), else ``None``."""
    return chooser if all(hasattr(chooser, name) for name in _CONTROL) else None  # type: ignore[return-value]


@dataclass
class Observability:
    """The observing pieces of one server."""

    journal: Journal
    metrics: Metrics
    request_log: RequestLog | None = None
    #: ``None`` when ``--no-admin`` removes the admin API.
    access: AdminAccess | None = None

    def observers(self) -> list[ExchangeObserver]:
        """Metrics, the recorder feeding the journal and the request log, and the console log."""
        sinks = [self.journal.add]
        if self.request_log is not None:
            sinks.append(self.request_log.add)
        return [self.metrics, Recorder(sinks), ConsoleLog()]

    def attach(self, app: Any, parent: MultiService) -> None:
        """Observe ``app``, serve its admin API and metrics, and put the request log under ``parent``."""
        app.observers.extend(self.observers())
        app.metrics = self.metrics
        if self.access is not None:
            control = scenario_control(app.scenarios)
            app.admin = Admin(
                self.journal,
                control,
                self.access,
                server_tls=lambda: app.server_tls,
                describe_peer=app.peers.describe,
                identify=app.identify,
            )
        if self.request_log is not None:
            self.request_log.setServiceParent(parent)


def from_options(options: Mapping[str, Any]) -> Observability:
    """The pieces the command line asks for."""
    log_path = options["request-log"]
    request_log = None
    if log_path:
        request_log = RequestLog(log_path, options["request-log-max-bytes"], options["request-log-keep"])
    access = None if options["no-admin"] else AdminAccess(options["admin-from"] or ())
    return Observability(Journal(options["journal-size"]), Metrics(), request_log, access)
