"""
The exchange record (fields, redaction, body cap, timings, outcomes) and the
in-memory journal (bounded ring, filters), driven in memory on a ``task.Clock``.
"""

from __future__ import annotations

import gc
import json

from twisted.trial import unittest

from mockllm.behaviour.errors import APIError
from mockllm.observe.exchange import COMPLETED, CUT, DISCONNECTED, Exchange
from mockllm.observe.journal import Journal, JournalQuery
from mockllm.observe.record import REDACTED, redact_headers
from tests.observe_support import PATH, STREAMING, STREAM_BODY, ObservedCase, observed_app
from tests.support import CHAT_BODY, RawHTTP, make_app


class RecordTests(ObservedCase):
    """What one exchange's record says."""

    def only_record(self) -> dict:
        """The journal's single record."""
        (record,) = self.o.journal.query()
        return record

    def test_fields_of_a_failed_request(self) -> None:
        """A ``fail=500`` request is recorded with its id, client, query, fault, status and bodies."""
        conn = self.send(PATH + "?fail=500", headers={"X-Mock-Key": "gw-1"})
        record = self.only_record()
        self.assertEqual(record["request_id"], conn.headers["x-request-id"])
        self.assertEqual(record["client"], "127.0.0.1:40000")
        self.assertIsNone(record["client_cert"])
        self.assertEqual((record["method"], record["path"], record["query"]), ("POST", PATH, "fail=500"))
        self.assertEqual((record["status"], record["fault"], record["scenario"]), (500, "status", "calm"))
        self.assertEqual(record["key"], "gw-1")
        self.assertEqual(record["outcome"], COMPLETED)
        self.assertEqual(json.loads(record["request"]["body"]), CHAT_BODY)
        self.assertEqual(json.loads(record["response"]["body"]), conn.json())
        self.assertEqual(record["time"], "2023-11-14T22:13:20.000Z")
        self.assertEqual(record["timestamp"], 1_700_000_000.0)

    def test_secret_headers_redacted(self) -> None:
        """Authorization keeps only its scheme; cookies and API-key headers are replaced entirely."""
        self.send(
            headers={
                "Authorization": "Bearer sk-secret",
                "Cookie": "session=abc",
                "X-Api-Key": "k1",
                "Api-Key": "k2",
                "X-Trace": "t-1",
            }
        )
        headers = self.only_record()["request"]["headers"]
        self.assertEqual(headers["authorization"], f"Bearer {REDACTED}")
        self.assertEqual(headers["cookie"], REDACTED)
        self.assertEqual(headers["x-api-key"], REDACTED)
        self.assertEqual(headers["api-key"], REDACTED)
        self.assertEqual(headers["x-trace"], "t-1")
        self.assertNotIn("sk-secret", json.dumps(self.only_record()))

    def test_redaction_of_bare_token_and_repeats(self) -> None:
        """A schemeless Authorization is fully redacted; repeated headers are joined."""
        headers = redact_headers([("Authorization", "sk-secret"), ("X-A", "1"), ("x-a", "2")])
        self.assertEqual(headers, {"authorization": REDACTED, "x-a": "1, 2"})

    def test_validation_failure_recorded_with_reason(self) -> None:
        """A request the shared validation refuses is recorded: 400, and the reason the client got."""
        conn = self.send(body=b"{not json")
        record = self.only_record()
        self.assertEqual(record["status"], 400)
        self.assertEqual(record["error"], conn.json()["error"]["message"])
        self.assertEqual(record["request"]["body"], "{not json")

    def test_unknown_url_recorded(self) -> None:
        """Requests no route serves are journaled too (as their 404)."""
        self.send("/v1/nothing")
        self.assertEqual(self.only_record()["status"], 404)

    def test_body_capped_with_original_size(self) -> None:
        """Bodies beyond the cap are cut, with the original size and a flag."""
        journal = Journal(10, body_cap=10)
        app, _ = make_app(STREAMING, observers=[journal])
        RawHTTP(app).send("POST", PATH, CHAT_BODY)
        (record,) = journal.query()
        request = record["request"]
        self.assertEqual(len(request["body"]), 10)
        self.assertEqual(request["body_bytes"], len(json.dumps(CHAT_BODY)))
        self.assertTrue(request["body_truncated"])

    def test_delay_shows_in_timings(self) -> None:
        """``delay=250`` makes time to first byte and total 250 ms on the app's clock."""
        self.send(PATH + "?delay=250")
        self.o.clock.advance(0.25)
        timings = self.only_record()["timings"]
        self.assertEqual((timings["ttfb_ms"], timings["total_ms"], timings["ttft_ms"]), (250.0, 250.0, None))

    def test_stream_recorded_when_complete(self) -> None:
        """A stream's record counts the events sent and has a time to first token; no body."""
        conn = self.send(body=STREAM_BODY)
        self.o.clock.pump([0.01] * 200)
        record = self.only_record()
        self.assertEqual(record["outcome"], COMPLETED)
        self.assertTrue(record["response"]["stream"])
        self.assertIsNone(record["response"]["body"])
        self.assertEqual(record["response"]["events_sent"], len(conn.events()))
        self.assertEqual(record["timings"]["ttfb_ms"], 0.0)
        self.assertEqual(record["timings"]["ttft_ms"], 10.0)

    def test_cut_stream_recorded(self) -> None:
        """A stream cut by ``fail_chunk`` is recorded as cut, with the events sent up to the cut."""
        self.send(PATH + "?fail_chunk=3", body=STREAM_BODY)
        self.o.clock.pump([0.01] * 10)
        record = self.only_record()
        self.assertEqual((record["outcome"], record["fault"]), (CUT, "fail_chunk"))
        self.assertEqual(record["response"]["events_sent"], 3)

    def test_abandoned_stream_recorded(self) -> None:
        """A client that leaves mid-stream is recorded once, as disconnected."""
        conn = self.send(body=STREAM_BODY)
        self.o.clock.pump([0.01, 0.01])
        conn.disconnect()
        self.o.clock.pump([0.01] * 50)
        record = self.only_record()
        self.assertEqual(record["outcome"], DISCONNECTED)
        self.assertEqual(record["response"]["events_sent"], 3)


def _exchange(path: str = PATH, status: int | None = 200, key: str = "k", at: float = 0.0) -> Exchange:
    """A finished exchange of ``path`` at ``at``, answered ``status``, for ``key``."""
    return Exchange(request_id="req_1", started=at, method="POST", path=path, query="", client="127.0.0.1:1",
                    headers=[], body=b"{}", key=key, status=status, outcome=COMPLETED, finished_at=at)


class JournalTests(unittest.TestCase):
    """The ring and its filters."""

    def setUp(self) -> None:
        self.journal = Journal(10)
        for i, status in enumerate([200, 429, 429, 500, 200, None]):
            self.journal.exchange_finished(_exchange(status=status, key=f"k{i % 2}", at=1_700_000_000.0 + i))
        self.journal.exchange_finished(_exchange(path="/v1/models", at=1_700_000_010.0))

    def test_entries_not_walked_by_the_collector(self) -> None:
        """What the journal keeps is atoms only: once the cyclic GC has passed over it (a pass per level of
        nesting), it stops tracking it, so a full journal adds nothing to its walks."""
        app, _ = make_app(STREAMING, observers=[journal := Journal(10)])
        for _ in range(3):
            RawHTTP(app).send("POST", PATH, CHAT_BODY, headers={"X-Trace": "t"})
        for _ in range(3):
            gc.collect()
        entries = list(journal._entries)
        self.assertEqual(len(entries), 3)
        self.assertEqual([gc.is_tracked(entry) for entry in entries], [False] * 3)

    def test_bounded_ring_drops_oldest(self) -> None:
        """Beyond its size the journal forgets the oldest records first."""
        journal = Journal(3)
        for i in range(5):
            journal.exchange_finished(_exchange(at=float(i)))
        self.assertEqual([r["timestamp"] for r in journal.query()], [2.0, 3.0, 4.0])
        self.assertEqual(journal.size, 3)

    def test_filters(self) -> None:
        """``path``, ``status`` (exact or a class), ``key``, ``since`` and ``limit`` narrow the list."""
        q = self.journal.query
        self.assertEqual(len(q(JournalQuery(path="/v1/models"))), 1)
        self.assertEqual(len(q(JournalQuery(status=429))), 2)
        self.assertEqual(len(q(JournalQuery(status=4, status_class=True))), 2)
        self.assertEqual(len(q(JournalQuery(key="k1"))), 3)
        self.assertEqual(len(q(JournalQuery(since=1_700_000_004.0))), 3)
        self.assertEqual([r["status"] for r in q(JournalQuery(path=PATH, limit=2))], [200, None])
        self.assertEqual(q(JournalQuery(limit=0)), [])

    def test_query_from_arguments(self) -> None:
        """The query string's filters are parsed, ISO 8601 times included (UTC when unmarked)."""
        args = {b"status": [b"5xx"], b"since": [b"2023-11-14T22:13:21"], b"limit": [b"5"], b"key": [b"k1"]}
        query = JournalQuery.from_args(args)
        self.assertEqual(query, JournalQuery(None, 5, True, "k1", 1_700_000_001.0, 5))
        self.assertEqual(JournalQuery.from_args({b"since": [b"1700000001.5"]}).since, 1_700_000_001.5)

    def test_bad_arguments_are_400s(self) -> None:
        """A malformed or unknown filter is an OpenAI-shaped 400 naming it."""
        bad = [(b"status", b"abc"), (b"status", b"99"), (b"since", b"yesterday"), (b"limit", b"-1"), (b"stauts", b"500")]
        for name, value in bad:
            with self.assertRaises(APIError) as raised:
                JournalQuery.from_args({name: [value]})
            self.assertEqual((raised.exception.status, raised.exception.param), (400, name.decode()))

    def test_odd_numbers_are_400s_not_crashes(self) -> None:
        """Non-ASCII digits, thousands of digits and non-finite times are 400s naming the filter."""
        bad = [
            (b"limit", "\u00b2".encode()),
            (b"status", "\u00b2".encode()),
            (b"status", "\u0665\u0660\u0660".encode()),
            (b"limit", b"9" * 5000),
            (b"limit", b""),
            (b"since", b"nan"),
            (b"since", b"-inf"),
            (b"since", b"1e999"),
        ]
        for name, value in bad:
            with self.assertRaises(APIError, msg=value[:20]) as raised:
                JournalQuery.from_args({name: [value]})
            self.assertEqual((raised.exception.status, raised.exception.param), (400, name.decode()))
        self.assertEqual(JournalQuery.from_args({b"limit": [b"9" * 18]}).limit, 10**18 - 1)

    def test_clear(self) -> None:
        """Clearing empties the journal and says how many records went."""
        self.assertEqual(self.journal.clear(), 7)
        self.assertEqual(len(self.journal), 0)


class IdentityTests(unittest.TestCase):
    """The client certificate reaches the record on every route."""

    def test_identity_on_any_route(self) -> None:
        """``client_cert`` is what the app's ``identify`` says, for ``/health`` as for completions."""
        cert = {"subject": "CN=gw", "issuer": "CN=ca"}
        o = observed_app(identify=lambda request: cert)
        RawHTTP(o.app).send("GET", "/health")
        RawHTTP(o.app).send("POST", PATH, CHAT_BODY)
        self.assertEqual([r["client_cert"] for r in o.journal.query()], [cert, cert])
        self.assertEqual(o.journal.query()[1]["key"], "CN=gw")


class ReasonTests(ObservedCase):
    """``error`` in a record is why a request was refused; routing answers have none."""

    def test_routing_answers_have_no_reason(self) -> None:
        """An unknown URL, a wrong method and an unknown model id are journaled with ``error: null``."""
        self.send("/v1/nothing")
        RawHTTP(self.o.app).send("GET", PATH)
        RawHTTP(self.o.app).send("GET", "/v1/models/nope")
        records = self.o.journal.query()
        self.assertEqual([(r["status"], r["error"]) for r in records], [(404, None), (405, None), (404, None)])

    def test_refusals_have_their_reason(self) -> None:
        """A body that fails validation is journaled with the message it was refused with."""
        self.send(body=b"[]")
        (record,) = self.o.journal.query()
        self.assertEqual(record["status"], 400)
        self.assertIn("Invalid type for request body", record["error"])
