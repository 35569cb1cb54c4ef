"""
Console logging: one ``twisted.logger`` event per finished exchange.

:class:`ConsoleLog` emits, in namespace ``mockllm.requests``, an event whose
format renders as one readable line::

    127.0.0.1:50312 POST /v1/chat/completions 500 12ms fault=status scenario=default completed req_9f...

A request that got no status (its client left first) shows ``none`` there, as the metrics do;
a refused request's line ends with ``error="..."``, the reason as a JSON string.

``twist mockllm`` prints that line wherever its output goes (see :mod:`.output`);
with ``twist --log-format json`` the event is JSON, every key below typed.  The
line is rendered here and the format is just ``{line}``, so a JSON observer
flattens one field, not ten.  The event is made here as ``Logger.emit`` makes it
(the same keys), and handed to the logger's observer: ``emit`` checks its level
against every ``LogLevel`` on each call, which was half the console's cost.
Bodies and headers are never in the event; they go to ``--request-log`` only.
"""

from __future__ import annotations

import json
import time

from twisted.logger import Logger, LogLevel

from mockllm.observe.exchange import Exchange
from mockllm.observe.record import elapsed_ms

#: The namespace of the console's events.
NAMESPACE = "mockllm.requests"


class ConsoleLog:
    """An exchange observer logging one line per finished exchange."""

    def __init__(self, log: Logger | None = None) -> None:
        self.log = log if log is not None else Logger(namespace=NAMESPACE)

    def exchange_started(self, exchange: Exchange) -> None:
        """Nothing is logged when a request arrives."""

    def exchange_finished(self, exchange: Exchange) -> None:
        """Log the exchange's line."""
        total = elapsed_ms(exchange, exchange.finished_at)
        status = exchange.status if exchange.status is not None else "none"
        duration = round(total) if total is not None else None
        fault, scenario = exchange.fault or "none", exchange.scenario or "-"
        line = (
            f"{exchange.client} {exchange.method} {exchange.path} {status} {duration}ms"
            f" fault={fault} scenario={scenario} {exchange.outcome} {exchange.request_id}"
        )
        if exchange.error:
            line += f" error={json.dumps(exchange.error, ensure_ascii=False)}"
        log = self.log
        log.observer({
            "client": exchange.client, "method": exchange.method, "path": exchange.path, "status": status,
            "duration_ms": duration, "fault": fault, "scenario": scenario, "outcome": exchange.outcome,
            "request_id": exchange.request_id, "error": exchange.error, "line": line,
            "log_logger": log, "log_level": LogLevel.info, "log_namespace": log.namespace,
            "log_source": log.source, "log_format": "{line}", "log_time": time.time(),
        })
