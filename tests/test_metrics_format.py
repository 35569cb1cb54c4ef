"""
``GET /metrics`` is byte for byte what ``prometheus_client`` renders for the same metrics and
the same counts (``_created`` times aside, which are when each child was first counted): the
server renders the page itself, and these tests keep the format from drifting.
"""

from __future__ import annotations

import math
import os
import re
import time
from types import SimpleNamespace

import prometheus_client
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.utils import floatToGoString
from twisted.trial import unittest

from mockllm.http.routes import route_templates
from mockllm.observe.metrics import LATENCY_BUCKETS, Metrics, created_enabled, go_float
from tests.observe_support import PATH, STREAM_BODY, ObservedCase
from tests.support import RawHTTP

#: A ``_created`` sample's value (a wall time), which the comparisons blank out.
CREATED = re.compile(r"^(\w+_created(?:\{.*\})?) \S+$", re.MULTILINE)
#: Label values that need escaping, or are not ASCII, or are empty.
AWKWARD = ['we"ird', "back\\slash", "new\nline", "é✓", "", 'all\\"\n']


def blank_created(text: str) -> str:
    """``text`` with every ``_created`` sample's value replaced by ``T``."""
    return CREATED.sub(r"\1 T", text)


class Reference:
    """The same metrics on a ``prometheus_client`` registry, defined as mockllm defined them with it."""

    def __init__(self, gauges: dict[str, object]) -> None:
        """``gauges``: name -> the function giving that gauge's value (mockllm's own)."""
        self.registry = CollectorRegistry()
        registry = self.registry
        self.metrics = {
            "mockllm_requests": Counter(
                "mockllm_requests", "Requests answered, by route, status, scenario and fault.",
                ["route", "status", "scenario", "fault"], registry=registry,
            ),
            "mockllm_request_duration_seconds": Histogram(
                "mockllm_request_duration_seconds", "Time from a request's arrival to its end, by route.",
                ["route"], buckets=LATENCY_BUCKETS, registry=registry,
            ),
            "mockllm_time_to_first_token_seconds": Histogram(
                "mockllm_time_to_first_token_seconds",
                "Time from a streamed request's arrival to its first content event.",
                ["route"], buckets=LATENCY_BUCKETS, registry=registry,
            ),
            "mockllm_tokens_sent": Counter(
                "mockllm_tokens_sent", "Completion tokens of answers delivered in full, by route.",
                ["route"], registry=registry,
            ),
            "mockllm_faults": Counter(
                "mockllm_faults",
                "Requests a fault acted on, by fault and outcome (reset, closed, stalled, cut-by-fault, ...).",
                ["fault", "outcome"], registry=registry,
            ),
            "mockllm_tls_handshakes": Counter(
                "mockllm_tls_handshakes", "TLS handshakes, by result (accepted or refused) and reason.",
                ["result", "reason"], registry=registry,
            ),
        }
        Gauge("mockllm_streams_open", "Event streams being sent now.", registry=registry).set_function(
            gauges["mockllm_streams_open"])
        Gauge("mockllm_requests_in_flight", "Requests received and not yet ended.", registry=registry).set_function(
            gauges["mockllm_requests_in_flight"])

    def text(self) -> str:
        """``prometheus_client``'s rendering, ``_created`` values blanked."""
        return blank_created(generate_latest(self.registry).decode("utf-8"))


class Twins:
    """mockllm's :class:`Metrics` and a :class:`Reference`, told the same things."""

    def __init__(self) -> None:
        self.ours = Metrics(route_templates())
        self.families = {family.name: family for family in self.ours.families}
        self.reference = Reference({name: family.value for name, family in self.families.items()
                                    if hasattr(family, "value")})

    def inc(self, name: str, labels: tuple[str, ...], amount: float = 1) -> None:
        """Add ``amount`` to counter ``name``'s child ``labels`` on both."""
        self.families[name].inc(labels, amount)
        self.reference.metrics[name].labels(*labels).inc(amount)

    def observe(self, name: str, labels: tuple[str, ...], amount: float) -> None:
        """Observe ``amount`` in histogram ``name``'s child ``labels`` on both."""
        self.families[name].observe(labels, amount)
        self.reference.metrics[name].labels(*labels).observe(amount)

    def texts(self) -> tuple[str, str]:
        """(ours, the reference's), ``_created`` values blanked."""
        return blank_created(self.ours.exposition().decode("utf-8")), self.reference.text()


COUNTERS = {"mockllm_requests": 4, "mockllm_tokens_sent": 1, "mockllm_faults": 2, "mockllm_tls_handshakes": 2}
HISTOGRAMS = ("mockllm_request_duration_seconds", "mockllm_time_to_first_token_seconds")
LABEL = st.one_of(st.sampled_from(AWKWARD + ["/v1/chat/completions", "200"]), st.text(max_size=8))
AMOUNT = st.one_of(st.sampled_from([0.0, 0.005, 0.0050001, 120.0, 121.0, 1234567890.0, math.inf, math.nan, -1.0]),
                   st.floats(allow_nan=True, allow_infinity=True))
OPERATION = st.one_of(
    st.sampled_from(sorted(COUNTERS)).flatmap(lambda name: st.tuples(
        st.just("inc"), st.just(name), st.tuples(*[LABEL] * COUNTERS[name]),
        st.one_of(st.just(1), st.integers(0, 10**12), st.floats(0, 1e12)))),
    st.tuples(st.just("observe"), st.sampled_from(HISTOGRAMS), st.tuples(LABEL), AMOUNT),
)


class FormatTests(unittest.TestCase):
    """mockllm's page against ``prometheus_client``'s, after the same operations."""

    def test_no_samples_yet(self) -> None:
        """A fresh server: HELP and TYPE only for the labelled families, and both gauges at 0."""
        ours, reference = Twins().texts()
        self.assertEqual(ours, reference)
        self.assertNotIn("_created", ours)

    def test_awkward_labels_and_numbers(self) -> None:
        """Escaped label values, bucket edges, ``+Inf``, NaN, exponents and gauges as ``prometheus_client`` has them."""
        twins = Twins()
        for value in AWKWARD:
            twins.inc("mockllm_requests", ("/v1/chat/completions", "200", value, "none"))
            twins.inc("mockllm_tls_handshakes", ("refused", value))
        twins.inc("mockllm_tokens_sent", ("/v1/chat/completions",), 1234567890)
        twins.inc("mockllm_tokens_sent", ("/v1/models",), 0.25)
        twins.inc("mockllm_faults", ("status", "completed"), 0)
        for amount in (0.0, 0.005, 0.0050001, 0.3, 120.0, 121.0, math.inf, 1e-9):
            twins.observe("mockllm_request_duration_seconds", ("/v1/chat/completions",), amount)
        twins.observe("mockllm_time_to_first_token_seconds", ("nan",), math.nan)
        twins.observe("mockllm_time_to_first_token_seconds", ("negative",), -1.0)
        twins.ours.exchange_started(SimpleNamespace(request_id="a", stream=True, status=200))
        twins.ours.exchange_started(SimpleNamespace(request_id="b", stream=False, status=None))
        ours, reference = twins.texts()
        self.assertEqual(ours, reference)
        self.assertIn("mockllm_streams_open 1.0\n", ours)
        self.assertIn('mockllm_tls_handshakes_total{reason="all\\\\\\"\\n",result="refused"} 1.0\n', ours)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(OPERATION, max_size=12))
    def test_any_operations(self, operations: list[tuple]) -> None:
        """Whatever is counted or observed, in whatever order, both pages are the same."""
        twins = Twins()
        for kind, name, labels, amount in operations:
            getattr(twins, kind)(name, labels, amount)
        ours, reference = twins.texts()
        self.assertEqual(ours, reference)

    @settings(max_examples=500, deadline=None)
    @given(st.floats(allow_nan=True, allow_infinity=True))
    def test_floats(self, value: float) -> None:
        """Numbers are written as ``prometheus_client`` writes them (``1.0``, ``0.005``, ``1.5e+09``)."""
        self.assertEqual(go_float(value), floatToGoString(value))

    def test_created_times(self) -> None:
        """A child's ``_created`` sample is the wall time it was first counted at."""
        twins = Twins()
        before = time.time()
        twins.inc("mockllm_faults", ("status", "completed"))
        twins.observe("mockllm_request_duration_seconds", ("/health",), 0.1)
        after = time.time()
        text = twins.ours.exposition().decode("utf-8")
        stamps = [float(line.rpartition(" ")[2]) for line in text.splitlines() if re.match(r"\w+_created\{", line)]
        self.assertEqual(len(stamps), 2)
        for stamp in stamps:
            self.assertTrue(before <= stamp <= after, (before, stamp, after))

    def test_created_series_can_be_disabled(self) -> None:
        """``PROMETHEUS_DISABLE_CREATED_SERIES=true`` leaves ``_created`` out, as with ``prometheus_client``."""
        self.assertFalse(created_enabled({"PROMETHEUS_DISABLE_CREATED_SERIES": "True"}))
        self.assertTrue(created_enabled({"PROMETHEUS_DISABLE_CREATED_SERIES": "no"}))
        self.assertTrue(created_enabled({}))
        self.patch(os, "environ", {"PROMETHEUS_DISABLE_CREATED_SERIES": "1"})
        prometheus_client.disable_created_metrics()
        self.addCleanup(prometheus_client.enable_created_metrics)
        twins = Twins()
        twins.inc("mockllm_faults", ("status", "completed"))
        twins.observe("mockllm_request_duration_seconds", ("/health",), 0.1)
        ours, reference = twins.texts()
        self.assertEqual(ours, reference)
        self.assertNotIn("_created", ours)


class ServedPageTests(ObservedCase):
    """The page as served."""

    def test_served_page(self) -> None:
        """``GET /metrics`` after traffic is :meth:`Metrics.exposition`, with the 0.0.4 content type."""
        self.send()
        self.send(PATH + "?fail=429")
        self.send(body=STREAM_BODY)
        self.send("/v1/nope")
        self.o.metrics.handshake(False, 'bad "ca"')
        self.o.clock.pump([0.01] * 200)
        conn = RawHTTP(self.o.app).send("GET", "/metrics")
        self.assertEqual(conn.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(conn.body, self.o.metrics.exposition())
        self.assertIn('mockllm_tls_handshakes_total{reason="bad \\"ca\\"",result="refused"} 1.0', conn.body.decode())
