"""
``GET /metrics``: Prometheus text that ``prometheus_client.parser`` reads,
whose counters agree with the journal; open streams, handshakes, and one
registry per app; and a start that does not load ``prometheus_client``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from mockllm.http.routes import route_templates
from mockllm.observe.metrics import UNMATCHED, Metrics, RouteNames
from tests.observe_support import PATH, STREAM_BODY, ObservedCase, observed_app
from tests.support import RawHTTP, make_app


def scrape(app) -> dict[str, dict[tuple, float]]:
    """``GET /metrics``, parsed: sample name -> {sorted label items: value}."""
    conn = RawHTTP(app).send("GET", "/metrics")
    assert conn.status == 200, conn.raw
    assert conn.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(conn.body.decode("utf-8")):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


class MetricsTests(ObservedCase):
    """Counters, histograms and gauges after real traffic on a clock."""

    def traffic(self) -> None:
        """A mix: successes, faults, a refusal, an unknown URL, a stream, a scenario switch."""
        self.send()
        self.send(PATH + "?fail=429")
        self.send(PATH + "?fail=429")
        self.send(body=b"[]")
        self.send("/v1/nope")
        self.send(body=STREAM_BODY)
        self.o.scenarios.switch("broken")
        self.send()
        RawHTTP(self.o.app).send("GET", "/v1/models/gpt-4o")
        self.o.clock.pump([0.01] * 200)

    def test_counters_match_the_journal(self) -> None:
        """``mockllm_requests_total`` by route, status, scenario and fault equals the journal's tally."""
        self.traffic()
        route_of = self.o.metrics.route_of
        tally = Counter(
            (("fault", r["fault"] or "none"), ("route", route_of(r["path"])),
             ("scenario", r["scenario"] or "none"), ("status", str(r["status"])))
            for r in self.o.journal.query()
        )
        counted = scrape(self.o.app)["mockllm_requests_total"]
        self.assertEqual(counted, {labels: float(n) for labels, n in tally.items()})
        self.assertEqual(sum(counted.values()), 8)
        self.assertIn((("fault", "none"), ("route", UNMATCHED), ("scenario", "none"), ("status", "404")), counted)

    def test_histograms_and_tokens(self) -> None:
        """Every request is timed; only the stream has a time to first token; full answers count tokens."""
        self.traffic()
        samples = scrape(self.o.app)
        self.assertEqual(sum(samples["mockllm_request_duration_seconds_count"].values()), 8)
        self.assertEqual(samples["mockllm_time_to_first_token_seconds_count"], {(("route", PATH),): 1.0})
        tokens = sum(r["response"]["completion_tokens"] for r in self.o.journal.query() if r["status"] == 200
                     and r["path"] == PATH)
        self.assertEqual(samples["mockllm_tokens_sent_total"], {(("route", PATH),): float(tokens)})

    def test_open_streams_gauge(self) -> None:
        """A stream being sent shows in ``mockllm_streams_open`` until it ends."""
        self.send(body=STREAM_BODY)
        self.o.clock.advance(0.01)
        samples = scrape(self.o.app)
        self.assertEqual(samples["mockllm_streams_open"], {(): 1.0})
        self.assertEqual(samples["mockllm_requests_in_flight"], {(): 1.0})
        self.o.clock.pump([0.01] * 200)
        self.assertEqual(scrape(self.o.app)["mockllm_streams_open"], {(): 0.0})

    def test_handshakes(self) -> None:
        """The mTLS hook counts handshakes by result and reason."""
        for ok, reason in [(True, "ok"), (False, "unknown-ca"), (False, "unknown-ca"), (False, "expired")]:
            self.o.metrics.handshake(ok, reason)
        self.assertEqual(
            scrape(self.o.app)["mockllm_tls_handshakes_total"],
            {
                (("reason", "ok"), ("result", "accepted")): 1.0,
                (("reason", "unknown-ca"), ("result", "refused")): 2.0,
                (("reason", "expired"), ("result", "refused")): 1.0,
            },
        )

    def test_scrapes_are_not_counted(self) -> None:
        """``/metrics`` and admin calls are neither counted nor journaled."""
        scrape(self.o.app)
        RawHTTP(self.o.app).send("GET", "/__admin/requests")
        self.assertNotIn("mockllm_requests_total", scrape(self.o.app))
        self.assertEqual(len(self.o.journal), 0)


class RegistryTests(unittest.TestCase):
    """Registries and route labels."""

    def test_one_registry_per_app(self) -> None:
        """Two apps in one process count separately."""
        first, second = observed_app(), observed_app()
        RawHTTP(first.app).send("GET", "/v1/models")
        self.assertIn("mockllm_requests_total", scrape(first.app))
        self.assertNotIn("mockllm_requests_total", scrape(second.app))

    def test_route_names(self) -> None:
        """Paths map to their route template, so labels stay few whatever the URLs."""
        names = RouteNames(["/v1/models", "/v1/models/<path:model_id>", "/health"])
        self.assertEqual(names("/v1/models"), "/v1/models")
        self.assertEqual(names("/v1/models/org/x"), "/v1/models/<path:model_id>")
        self.assertEqual(names("/wp-admin.php"), UNMATCHED)
        self.assertEqual(Metrics(route_templates()).route_of("/v1/completions"), "/v1/completions")

    def test_no_metrics_is_404(self) -> None:
        """An app built without metrics answers ``/metrics`` like any unknown URL."""
        app, _ = make_app()
        self.assertEqual(RawHTTP(app).send("GET", "/metrics").status, 404)


class FootprintTests(unittest.TestCase):
    """What the metrics cost a start."""

    def test_start_does_not_import_prometheus_client(self) -> None:
        """``import mockllm.tap`` (what ``twist mockllm`` loads) leaves ``prometheus_client`` unimported."""
        root = Path(__file__).resolve().parent.parent
        code = "import sys, mockllm.tap; print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(root),
                             env={**os.environ, "PYTHONPATH": "."})
        self.assertEqual(out.stdout.strip(), "[]")
