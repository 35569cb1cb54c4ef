"""
``max_connections`` refusals are answers like any other: the journal, the
request log's records and the metrics all see them.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mockllm.http.connlimit import ConnectionLimit
from mockllm.http.site import MockSite
from tests.observe_support import observed_app
from tests.test_metrics import scrape


class RefusalRecordTests(unittest.TestCase):
    """A refused connection is journaled and counted."""

    def test_journal_and_metrics(self) -> None:
        """The 503 lands in the journal with method, path, client and outcome, and in the request counter."""
        o = observed_app()
        site = MockSite(o.app.resource())
        site.timeOut = None
        limiter = ConnectionLimit(site, 0, Clock(), o.app.record)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 5555))
        protocol = limiter.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        protocol.dataReceived(b"POST /v1/chat/completions?fail=429 HTTP/1.1\r\nHost: x\r\n\r\n")
        protocol.connectionLost(None)
        [record] = o.journal.query()
        self.assertEqual(
            (record["method"], record["path"], record["query"], record["status"], record["outcome"]),
            ("POST", "/v1/chat/completions", "fail=429", 503, "refused"),
        )
        self.assertEqual(record["client"], "10.0.0.7:5555")
        self.assertIn(record["request_id"].encode(), transport.value())
        counted = scrape(o.app)["mockllm_requests_total"]
        self.assertEqual(sum(v for labels, v in counted.items() if ("status", "503") in labels), 1)


class ProducerTests(unittest.TestCase):
    """A connection the limit lets through pauses, resumes and stops its transport when told to."""

    def test_producer_calls_reach_the_transport(self) -> None:
        """``pauseProducing``, ``resumeProducing`` and ``stopProducing`` on the wrapper act on the transport."""
        site = MockSite(observed_app().app.resource())
        site.timeOut = None
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 5555))
        protocol = ConnectionLimit(site, 10, Clock()).buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        states = []
        for call in (protocol.pauseProducing, protocol.resumeProducing, protocol.stopProducing):
            call()
            states.append(transport.producerState)
        self.assertEqual(states, ["paused", "producing", "stopped"])
