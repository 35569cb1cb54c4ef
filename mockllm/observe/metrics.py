"""
Prometheus metrics for ``GET /metrics``, counted and rendered by mockllm itself.

:class:`Metrics` is an exchange observer (requests, latencies, tokens, open
streams) and the target of the mTLS code's handshake hook
(:meth:`Metrics.handshake`, passed as ``on_handshake``).  Each instance has
metrics of its own, so any number of apps can live in one process.  The
metric names are listed in ``docs/api.md``.

The page is the Prometheus text format 0.0.4 exactly as ``prometheus_client``
renders it (``tests/test_metrics_format.py`` compares the two): ``# HELP`` and
``# TYPE`` lines, counters as ``name_total`` with a ``name_created`` gauge
family after them, histograms as cumulative ``_bucket`` samples up to
``le="+Inf"`` then ``_count`` and ``_sum`` (and ``_created``), labels sorted by
name, label values escaped, numbers as Go prints them.  Like
``prometheus_client``, ``PROMETHEUS_DISABLE_CREATED_SERIES=true`` in the
environment leaves the ``_created`` series out.  ``prometheus_client`` is not
imported: it would bring in an HTTP server, gzip, WSGI and a lock per update,
none of which a scrape of this page needs.

Everything is counted on the reactor thread, so nothing takes a lock: the
numbers are plain dictionaries keyed by tuples of label values, held by
:class:`CounterCells` and :class:`HistogramCells`.  Those two are the state;
the families (:class:`CounterFamily`, :class:`HistogramFamily`,
:class:`GaugeFunction`) only name and render it.  Numbers shared by several
worker processes would be a different implementation of the cells' small
interface (``inc``/``observe``, ``children()``), with the families and the
exposition unchanged.  The open-stream and in-flight gauges are functions,
computed only when scraped.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from twisted.web.iweb import IRequest

from mockllm.observe.exchange import COMPLETED, Exchange

#: Latency buckets in seconds: a mock answers in milliseconds, but delays and timeouts run to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: The ``route`` label of a request that matched no route (a 404 for an unknown URL).
UNMATCHED = "unmatched"
#: The content type of the page: the Prometheus text format, version 0.0.4.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


def go_float(value: float) -> str:
    """``value`` as Prometheus (Go) writes it: ``1.0``, ``0.005``, ``+Inf``, ``1.5e+09``."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``{a="x",b="y"}`` with the names sorted and the values escaped; empty without labels."""
    if not names:
        return ""
    pairs = sorted(zip(names, values))
    escaped = (value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for _, value in pairs)
    return "{" + ",".join(f'{name}="{value}"' for (name, _), value in zip(pairs, escaped)) + "}"


def created_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``_created`` series are shown: unless ``PROMETHEUS_DISABLE_CREATED_SERIES`` is true."""
    return environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


# --- state -------------------------------------------------------------------------------


class CounterCells:
    """One counter's values by label values, and the wall time each child was first counted."""

    __slots__ = ("_values", "_created", "_now")

    def __init__(self, now: Callable[[], float]) -> None:
        """``now``: the wall clock (seconds since the epoch) for the ``_created`` times."""
        self._values: dict[Labels, float] = {}
        self._created: dict[Labels, float] = {}
        self._now = now

    def inc(self, labels: Labels, amount: float = 1) -> None:
        """Add ``amount`` to the child ``labels`` (made, at 0, the first time)."""
        try:
            self._values[labels] += amount
        except KeyError:
            self._created[labels] = self._now()
            self._values[labels] = 0.0 + amount

    def children(self) -> Iterator[tuple[Labels, float, float]]:
        """``(labels, value, created)`` for every child, oldest first."""
        created = self._created
        return ((labels, value, created[labels]) for labels, value in self._values.items())


class HistogramCells:
    """One histogram's bucket counts and sums by label values, and when each child was made."""

    __slots__ = ("bounds", "_cells", "_created", "_now")

    def __init__(self, bounds: Sequence[float], now: Callable[[], float]) -> None:
        """``bounds``: the buckets' upper bounds, ascending; ``+Inf`` is added. ``now`` as for counters."""
        self.bounds = (*bounds, math.inf) if not bounds or bounds[-1] != math.inf else tuple(bounds)
        #: Per child: the count in each bucket (not cumulative), then the sum.
        self._cells: dict[Labels, list[float]] = {}
        self._created: dict[Labels, float] = {}
        self._now = now

    def observe(self, labels: Labels, amount: float) -> None:
        """Count ``amount`` in its bucket of the child ``labels`` and add it to the sum (NaN: the sum only)."""
        try:
            cell = self._cells[labels]
        except KeyError:
            cell = self._new(labels)
        index = bisect_left(self.bounds, amount)
        if amount <= self.bounds[index]:
            cell[index] += 1
        cell[-1] += amount

    def _new(self, labels: Labels) -> list[float]:
        self._created[labels] = self._now()
        cell = self._cells[labels] = [0.0] * (len(self.bounds) + 1)
        return cell

    def children(self) -> Iterator[tuple[Labels, list[float], float]]:
        """``(labels, [count per bucket..., sum], created)`` for every child, oldest first."""
        created = self._created
        return ((labels, cell, created[labels]) for labels, cell in self._cells.items())


# --- families ------------------------------------------------------------------------------


def _header(name: str, help_text: str, kind: str) -> str:
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class LabelledFamily:
    """A labelled counter or histogram: its samples per child, then a ``name_created`` gauge family."""

    #: The ``# TYPE`` and the suffix of the name on the ``# HELP``/``# TYPE`` lines.
    kind, suffix = "untyped", ""

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str], cells: CounterCells | HistogramCells
    ) -> None:
        """``name`` without ``_total``; ``cells`` hold its numbers."""
        self.name, self.help_text, self.labelnames, self.cells = name, help_text, tuple(labelnames), cells

    def render(self, created: bool) -> str:
        """The family's exposition text; ``created``: with the ``_created`` series."""
        out, stamps = [_header(self.name + self.suffix, self.help_text, self.kind)], []
        for labels, numbers, made in self.cells.children():
            text = label_text(self.labelnames, labels)
            out += self.samples(labels, text, numbers)
            stamps.append(f"{self.name}_created{text} {go_float(made)}\n")
        if created and stamps:
            out += [_header(self.name + "_created", self.help_text, "gauge"), *stamps]
        return "".join(out)

    def samples(self, labels: Labels, text: str, numbers: object) -> list[str]:
        """One child's sample lines; ``text``: its labels, rendered."""
        raise NotImplementedError


class CounterFamily(LabelledFamily):
    """A labelled counter: ``name_total`` samples."""

    kind, suffix = "counter", "_total"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], cells: CounterCells) -> None:
        """As for every family; ``inc`` is the cells'."""
        super().__init__(name, help_text, labelnames, cells)
        self.inc = cells.inc

    def samples(self, labels: Labels, text: str, numbers: float) -> list[str]:
        """The child's ``_total``."""
        return [f"{self.name}_total{text} {go_float(numbers)}\n"]


class HistogramFamily(LabelledFamily):
    """A labelled histogram: cumulative ``_bucket`` samples up to ``+Inf``, ``_count``, ``_sum``."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], cells: HistogramCells) -> None:
        """As for every family; ``observe`` is the cells'."""
        super().__init__(name, help_text, labelnames, cells)
        self.observe = cells.observe
        self._les = tuple(go_float(bound) for bound in cells.bounds)

    def samples(self, labels: Labels, text: str, numbers: list[float]) -> list[str]:
        """The child's buckets, count and sum (no sum if a bucket is below 0, as Prometheus wants)."""
        out, total, names = [], 0.0, (*self.labelnames, "le")
        for le, count in zip(self._les, numbers):
            total += count
            out.append(f"{self.name}_bucket{label_text(names, (*labels, le))} {go_float(total)}\n")
        out.append(f"{self.name}_count{text} {go_float(total)}\n")
        if self.cells.bounds[0] >= 0:
            out.append(f"{self.name}_sum{text} {go_float(numbers[-1])}\n")
        return out


class GaugeFunction:
    """An unlabelled gauge whose value a function gives when scraped."""

    def __init__(self, name: str, help_text: str, value: Callable[[], float]) -> None:
        """``value`` is called once per scrape."""
        self.name, self.help_text, self.value = name, help_text, value

    def render(self, created: bool) -> str:
        """The family's exposition text (gauges have no ``_created``)."""
        return f"{_header(self.name, self.help_text, 'gauge')}{self.name} {go_float(self.value())}\n"


# --- the server's metrics ---------------------------------------------------------------------


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
    """The server's Prometheus metrics; an exchange observer.

    ``requests``, ``duration``, ``ttft``, ``tokens``, ``faults`` and ``handshakes`` are its
    labelled families; ``families`` lists every family in the order the page shows them.
    """

    def __init__(self, routes: Iterable[str] = ()) -> None:
        """``routes``: the route templates requests are labelled with (others are ``unmatched``)."""
        self.route_of = RouteNames(routes)
        self._live: dict[str, Exchange] = {}
        self._show_created = created_enabled(os.environ)
        now = time.time
        self.requests = CounterFamily(
            "mockllm_requests", "Requests answered, by route, status, scenario and fault.",
            ("route", "status", "scenario", "fault"), CounterCells(now),
        )
        self.duration = HistogramFamily(
            "mockllm_request_duration_seconds", "Time from a request's arrival to its end, by route.",
            ("route",), HistogramCells(LATENCY_BUCKETS, now),
        )
        self.ttft = HistogramFamily(
            "mockllm_time_to_first_token_seconds", "Time from a streamed request's arrival to its first content event.",
            ("route",), HistogramCells(LATENCY_BUCKETS, now),
        )
        self.tokens = CounterFamily(
            "mockllm_tokens_sent", "Completion tokens of answers delivered in full, by route.",
            ("route",), CounterCells(now),
        )
        self.faults = CounterFamily(
            "mockllm_faults", "Requests a fault acted on, by fault and outcome (reset, closed, stalled, cut-by-fault, ...).",
            ("fault", "outcome"), CounterCells(now),
        )
        self.handshakes = CounterFamily(
            "mockllm_tls_handshakes", "TLS handshakes, by result (accepted or refused) and reason.",
            ("result", "reason"), CounterCells(now),
        )
        self.families = (
            self.requests, self.duration, self.ttft, self.tokens, self.faults, self.handshakes,
            GaugeFunction("mockllm_streams_open", "Event streams being sent now.", self._open_streams),
            GaugeFunction("mockllm_requests_in_flight", "Requests received and not yet ended.", self._in_flight),
        )

    def _open_streams(self) -> int:
        return sum(1 for ex in self._live.values() if ex.stream and ex.status == 200)

    def _in_flight(self) -> int:
        return len(self._live)

    # --- exchange observer ---------------------------------------------------------

    def exchange_started(self, exchange: Exchange) -> None:
        """Count the request as in flight."""
        self._live[exchange.request_id] = exchange

    def exchange_finished(self, exchange: Exchange) -> None:
        """Count the request by its labels and observe its latencies."""
        self._live.pop(exchange.request_id, None)
        route = self.route_of(exchange.path)
        status = str(exchange.status) if exchange.status is not None else "none"
        fault = exchange.fault
        self.requests.inc((route, status, exchange.scenario or "none", fault or "none"))
        if fault is not None:
            self.faults.inc((fault, exchange.outcome or "none"))
        if exchange.finished_at is not None:
            self.duration.observe((route,), exchange.finished_at - exchange.started)
        if exchange.first_token_at is not None:
            self.ttft.observe((route,), exchange.first_token_at - exchange.started)
        if exchange.completion_tokens and exchange.status == 200 and exchange.outcome == COMPLETED:
            self.tokens.inc((route,), exchange.completion_tokens)

    # --- TLS -------------------------------------------------------------------------

    def handshake(self, ok: bool, reason: str) -> None:
        """Count one TLS handshake: the mTLS listener's ``on_handshake(ok, reason)`` hook."""
        self.handshakes.inc(("accepted" if ok else "refused", str(reason)))

    # --- exposition ------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every family in the Prometheus text format 0.0.4, UTF-8."""
        return "".join(family.render(self._show_created) for family in self.families).encode("utf-8")

    def page(self, request: IRequest) -> bytes:
        """The metrics in the Prometheus text format, with its content type set on ``request``."""
        request.setHeader(b"content-type", CONTENT_TYPE)
        return self.exposition()
