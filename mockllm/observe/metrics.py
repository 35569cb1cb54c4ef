"""
Prometheus metrics for ``GET /metrics``, on a registry of their own.

:class:`Metrics` is an exchange observer (requests, latencies, tokens, open
streams) and the target of the mTLS code's handshake hook
(:meth:`Metrics.handshake`, passed as ``on_handshake``).  Each instance owns a
``CollectorRegistry`` (never the global one), so any number of apps can live
in one process.  Per request it does two dictionary operations and a few
counter updates; the open-stream and in-flight gauges are computed only when
scraped.  The metric names are listed in ``docs/api.md``.
"""

from __future__ import annotations

from typing import Any, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from twisted.web.iweb import IRequest

from mockllm.observe.exchange import COMPLETED, Exchange

#: Latency buckets in seconds: a mock answers in milliseconds, but delays and timeouts run to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: The ``route`` label of a request that matched no route (a 404 for an unknown URL).
UNMATCHED = "unmatched"


class RouteNames:
    """Maps a request path to the route template that serves it, for a bounded ``route`` label."""

    def __init__(self, rules: Iterable[str]) -> None:
        rules = list(rules)
        self._static = frozenset(rule for rule in rules if "<" not in rule)
        dynamic = [(rule.partition("<")[0], rule) for rule in rules if "<" in rule]
        self._dynamic = sorted(dynamic, key=lambda pair: -len(pair[0]))

    def __call__(self, path: str) -> str:
        """The template (``/v1/models/<path:model_id>``), the path itself if static, or ``unmatched``."""
        if path in self._static:
            return path
        for prefix, rule in self._dynamic:
            if path.startswith(prefix):
                return rule
        return UNMATCHED


class Metrics:
    """The server's Prometheus metrics; an exchange observer."""

    def __init__(self, routes: Iterable[str] = ()) -> None:
        """``routes``: the route templates requests are labelled with (others are ``unmatched``)."""
        self.registry = CollectorRegistry()
        self.route_of = RouteNames(routes)
        self._live: dict[str, Exchange] = {}
        #: Labelled children by (metric, labels): ``labels()`` takes a lock and checks the names every call.
        self._children: dict[tuple, Any] = {}
        self._define(self.registry)

    def _define(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mockllm_requests", "Requests answered, by route, status, scenario and fault.",
            ["route", "status", "scenario", "fault"], registry=registry,
        )
        self.duration = Histogram(
            "mockllm_request_duration_seconds", "Time from a request's arrival to its end, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.ttft = Histogram(
            "mockllm_time_to_first_token_seconds", "Time from a streamed request's arrival to its first content event.",
            ["route"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.tokens = Counter(
            "mockllm_tokens_sent", "Completion tokens of answers delivered in full, by route.",
            ["route"], registry=registry,
        )
        self.faults = Counter(
            "mockllm_faults", "Requests a fault acted on, by fault and outcome (reset, closed, stalled, cut-by-fault, ...).",
            ["fault", "outcome"], registry=registry,
        )
        self.handshakes = Counter(
            "mockllm_tls_handshakes", "TLS handshakes, by result (accepted or refused) and reason.",
            ["result", "reason"], registry=registry,
        )
        Gauge("mockllm_streams_open", "Event streams being sent now.", registry=registry).set_function(
            self._open_streams
        )
        Gauge("mockllm_requests_in_flight", "Requests received and not yet ended.", registry=registry).set_function(
            lambda: len(self._live)
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _open_streams(self) -> int:
        return sum(1 for ex in self._live.values() if ex.stream and ex.status == 200)

    # --- exchange observer ---------------------------------------------------------

    def exchange_started(self, exchange: Exchange) -> None:
        """Count the request as in flight."""
        self._live[exchange.request_id] = exchange

    def exchange_finished(self, exchange: Exchange) -> None:
        """Count the request by its labels and observe its latencies."""
        self._live.pop(exchange.request_id, None)
        route = self.route_of(exchange.path)
        status = str(exchange.status) if exchange.status is not None else "none"
        self._child(self.requests, route, status, exchange.scenario or "none", exchange.fault or "none").inc()
        if exchange.fault is not None:
            self._child(self.faults, exchange.fault, exchange.outcome or "none").inc()
        if exchange.finished_at is not None:
            self._child(self.duration, route).observe(exchange.finished_at - exchange.started)
        if exchange.first_token_at is not None:
            self._child(self.ttft, route).observe(exchange.first_token_at - exchange.started)
        if exchange.completion_tokens and exchange.status == 200 and exchange.outcome == COMPLETED:
            self._child(self.tokens, route).inc(exchange.completion_tokens)

    # --- TLS -------------------------------------------------------------------------

    def handshake(self, ok: bool, reason: str) -> None:
        """Count one TLS handshake: the mTLS listener's ``on_handshake(ok, reason)`` hook."""
        self.handshakes.labels("accepted" if ok else "refused", reason).inc()

    # --- exposition ------------------------------------------------------------------

    def page(self, request: IRequest) -> bytes:
        """The metrics in the Prometheus text format, with its content type set on ``request``."""
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)
