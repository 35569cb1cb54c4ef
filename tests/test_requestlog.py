"""
``--request-log``: concurrent requests over a real socket land in the file and
the journal exactly once each; rotation; closing on stop without losing late
lines; the console line; and the real ``twist`` process on SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from mockllm import tap
from mockllm.http.routes import MockLLM
from mockllm.config import Config, ResponsesConfig
from mockllm.observe.console import ConsoleLog
from mockllm.observe.exchange import Exchange
from mockllm.observe.journal import Journal
from mockllm.observe.metrics import Metrics
from mockllm.server import Observers
from mockllm.http.routes import route_templates
from mockllm.observe.requestlog import RequestLog
from tests.observe_support import PATH, FakeScenarios, observed_app
from tests.processes import spawn
from tests.support import CHAT_BODY, RawHTTP, listen, treq_client


def read_lines(path: str) -> list[dict]:
    """Every line of ``path`` as JSON (each must parse)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def record(n: int) -> dict:
    """A small stand-in record."""
    return {"request_id": f"req_{n}", "method": "GET", "path": "/health", "pad": "x" * 100}


class SocketTests(unittest.TestCase):
    """Concurrent traffic over a real loopback socket."""

    timeout = 30

    def setUp(self) -> None:
        self.path = self.mktemp()
        config = Config(responses=ResponsesConfig(stream_interval_ms=0))
        self.pieces = Observers(Journal(100), Metrics(route_templates()), RequestLog(self.path))
        self.app = MockLLM(config, reactor, rng=random.Random(0), scenarios=FakeScenarios(),
                           observers=self.pieces.observers(), metrics=self.pieces.metrics)
        top = MultiService()
        self.pieces.request_log.setServiceParent(top)
        top.startService()
        self.addCleanup(top.stopService)
        self.url = listen(self, self.app)

    async def test_each_request_once_in_file_and_journal(self) -> None:
        """Twelve concurrent requests of every kind: one line and one journal entry each, fields right."""
        client = treq_client(self)
        calls = [
            call
            for _ in range(2)
            for call in (
                client.post(self.url + PATH, json=CHAT_BODY, headers={"Authorization": "Bearer sk-live"}),
                client.post(self.url + PATH + "?fail=503", json=CHAT_BODY),
                client.post(self.url + PATH, json={**CHAT_BODY, "stream": True}),
                client.post(self.url + PATH, data=b"not json"),
                client.get(self.url + "/v1/models"),
                client.get(self.url + "/nowhere"),
            )
        ]
        responses = await gatherResults(calls)
        bodies = await gatherResults([r.content() for r in responses])
        sent = {r.headers.getRawHeaders("x-request-id")[0]: (r.code, body) for r, body in zip(responses, bodies)}
        self.assertEqual(len(sent), 12)
        journal = {r["request_id"]: r for r in self.pieces.journal.query()}
        lines = read_lines(self.path)
        self.assertEqual(len(lines), 12)
        self.assertEqual({line["request_id"] for line in lines}, set(sent))
        self.assertEqual(set(journal), set(sent))
        for line in lines:
            code, body = sent[line["request_id"]]
            self.assertEqual(line, journal[line["request_id"]])
            self.assertEqual(line["status"], code)
            self.assertTrue(line["client"].startswith("127.0.0.1:"))
            if not line["response"]["stream"]:
                self.assertEqual(line["response"]["body"].encode(), body)
        self.assertNotIn("sk-live", Path(self.path).read_text())
        self.assertEqual(sorted(line["status"] for line in lines), [200] * 6 + [400] * 2 + [404] * 2 + [503] * 2)


class RequestLogTests(unittest.TestCase):
    """The file: rotation, stop, late lines, failures."""

    def setUp(self) -> None:
        self.path = self.mktemp()

    def started(self, **kwargs) -> RequestLog:
        """A started request log at ``self.path``, stopped in cleanup."""
        log = RequestLog(self.path, **kwargs)
        log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        return log

    def test_rotation_by_size(self) -> None:
        """Past ``max_bytes`` the file rotates to FILE.1, FILE.2; older ones beyond ``keep`` go; lines stay whole."""
        log = self.started(max_bytes=1000, keep=2)
        for n in range(40):
            log.add(record(n))
        self.assertTrue(os.path.exists(self.path + ".2"))
        self.assertFalse(os.path.exists(self.path + ".3"))
        kept = read_lines(self.path + ".2") + read_lines(self.path + ".1") + read_lines(self.path)
        self.assertEqual([r["request_id"] for r in kept], [f"req_{n}" for n in range(40 - len(kept), 40)])
        self.assertLessEqual(os.path.getsize(self.path + ".1"), 1000 + len(json.dumps(record(0))) + 1)

    def test_appends_to_an_existing_file(self) -> None:
        """A restart appends to the file rather than truncating it."""
        self.started().add(record(1))
        self.flushLoggedErrors()
        second = RequestLog(self.path)
        second.startService()
        second.add(record(2))
        second.stopService()
        self.assertEqual([r["request_id"] for r in read_lines(self.path)], ["req_1", "req_2"])

    def test_lines_after_stop_are_kept(self) -> None:
        """Stopping closes the file; an exchange ending later (dropped at shutdown) is still appended."""
        log = self.started()
        log.add(record(1))
        log.stopService()
        log.add(record(2))
        self.assertEqual([r["request_id"] for r in read_lines(self.path)], ["req_1", "req_2"])

    def test_unopenable_file_exits_clearly(self) -> None:
        """A path in a missing directory stops the start with one readable line."""
        log = RequestLog(os.path.join(self.mktemp(), "missing", "requests.jsonl"))
        with self.assertRaises(SystemExit) as caught:
            log.startService()
        self.assertIn("cannot open the request log", str(caught.exception.code))

    def test_write_failure_is_logged_once(self) -> None:
        """A failing write (disk full) is logged once, never raised into the request path."""
        log = self.started()

        def full(event: dict) -> None:
            raise OSError(28, "No space left on device")

        log._observer = full
        log.add(record(1))
        log.add(record(2))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_options_build_the_service(self) -> None:
        """``--request-log`` with its size options puts a request log in the server's services."""
        options = tap.Options()
        options.parseOptions(["--no-https", "--http-port", "0", "--request-log", self.path,
                              "--request-log-max-bytes", "0", "--request-log-keep", "3"])
        (log,) = [s for s in tap.makeService(options) if isinstance(s, RequestLog)]
        self.assertEqual((log.path, log.max_bytes, log.keep), (self.path, 0, 3))


class ConsoleTests(unittest.TestCase):
    """One readable line per exchange, through ``twisted.logger``."""

    def test_line(self) -> None:
        """The event formats as one line with method, path, status, ms, fault, scenario and id; no body."""
        events: list[dict] = []
        o = observed_app(admin=False, observers=[ConsoleLog(Logger(observer=events.append))])
        conn = RawHTTP(o.app).send("POST", PATH + "?fail=429&delay=120", {**CHAT_BODY, "user": "secret-words"})
        o.clock.advance(0.12)
        (event,) = events
        line = formatEvent(event)
        request_id = conn.headers["x-request-id"]
        self.assertEqual(
            line, f"127.0.0.1:40000 POST {PATH} 429 120ms fault=status scenario=calm completed {request_id}"
        )
        self.assertNotIn("secret-words", repr(event))

    def test_line_with_reason(self) -> None:
        """A refused request's line ends with the reason."""
        events: list[dict] = []
        o = observed_app(admin=False, observers=[ConsoleLog(Logger(observer=events.append))])
        RawHTTP(o.app).send("POST", PATH, b"[]")
        self.assertIn(" 400 0ms fault=none scenario=- completed req_", formatEvent(events[0]))
        self.assertIn('error="Invalid type for request body', formatEvent(events[0]))

    def test_reason_with_quotes_and_no_status(self) -> None:
        """One rendering: the reason is a JSON string whatever quotes it holds; no status is ``none``."""
        from mockllm.observe.exchange import Exchange

        events: list[dict] = []
        log = ConsoleLog(Logger(observer=events.append))
        ex = Exchange("req_1", 0.0, "POST", PATH, "", "127.0.0.1:1", [], b"", error="can't \"parse\"")
        ex.finished_at, ex.outcome = 1.0, "client-disconnected"
        log.exchange_finished(ex)
        line = formatEvent(events[0])
        self.assertIn(" none 1000ms ", line)
        self.assertTrue(line.endswith(' error="can\'t \\"parse\\""'), line)


class ProcessTests(unittest.TestCase):
    """The real ``twist mockllm --request-log``."""

    timeout = 60

    async def test_sigterm_loses_nothing(self) -> None:
        """After SIGTERM the file holds every request, the stream cut by the shutdown included (as such)."""
        cwd = self.mktemp()
        os.makedirs(cwd)
        server = spawn(self, ["--no-https", "--http-port", "0", "--stream-interval-ms", "500", "--shutdown-grace-s", "0",
                              "--request-log", "requests.jsonl"], cwd)
        url = await server.ready
        client = treq_client(self)
        done = await client.get(url + "/v1/models")
        await done.content()
        secret = {"role": "user", "content": "zebra-secret"}
        streaming = await client.post(url + PATH, json={**CHAT_BODY, "messages": [secret], "stream": True})
        self.assertEqual(streaming.code, 200)
        streaming.deliverBody(_Ignore())
        self.assertIn(await server.stop(), (0, -15))
        lines = read_lines(os.path.join(cwd, "requests.jsonl"))
        self.assertEqual([(r["path"], r["outcome"]) for r in lines],
                         [("/v1/models", "completed"), (PATH, "server-shutdown")])
        self.assertIn(b"[mockllm.requests#info] 127.0.0.1:", server.output)
        self.assertNotIn(b"zebra-secret", server.output)
        self.assertIn("zebra-secret", lines[1]["request"]["body"])


class OutputTests(unittest.TestCase):
    """What ``twist mockllm`` prints when its output is not a terminal."""

    timeout = 30

    async def output_of(self, twist_args: list[str]) -> list[bytes]:
        """The lines a server prints while answering one request."""
        cwd = self.mktemp()
        os.makedirs(cwd)
        server = spawn(self, ["--no-https", "--http-port", "0"], cwd, twist_args=twist_args)
        url = await server.ready
        client = treq_client(self)
        await (await client.get(url + "/v1/models")).content()
        await server.stop()
        return server.output.splitlines()

    async def test_readable_by_default(self) -> None:
        """Through a pipe: one readable line per event, no JSON, no Twisted port noise."""
        lines = await self.output_of([])
        self.assertTrue(any(b"[mockllm.requests#info] 127.0.0.1:" in line and b" GET /v1/models 200 " in line for line in lines))
        self.assertFalse(any(line.lstrip(b"\x1e").startswith(b"{") for line in lines), lines)
        self.assertFalse(any(b"starting on" in line or b"Port" in line and b"Closed" in line for line in lines), lines)

    async def test_json_when_asked(self) -> None:
        """``twist --log-format json mockllm``: Twisted's JSON events, one per line, still without port noise."""
        lines = await self.output_of(["--log-format", "json"])
        # Twisted's JSON lines begin with the record separator (RS, 0x1e).
        events = [json.loads(line.lstrip(b"\x1e")) for line in lines if line.lstrip(b"\x1e").startswith(b"{")]
        requests = [e for e in events if e.get("log_namespace") == "mockllm.requests"]
        self.assertEqual([(e["method"], e["path"], e["status"]) for e in requests], [("GET", "/v1/models", 200)])
        self.assertFalse(any("starting on" in str(e.get("log_text", "")) for e in events))


class _Ignore:
    """A body protocol that discards what it gets."""

    def makeConnection(self, transport) -> None:
        """Nothing to set up."""

    def dataReceived(self, data: bytes) -> None:
        """Discard."""

    def connectionLost(self, reason) -> None:
        """Nothing to clean up."""


class TextLinesTests(unittest.TestCase):
    """``twist``'s text format as mockllm installs it (:class:`~mockllm.observe.output.TextLines`)."""

    def test_console_lines_flushed_once_per_turn(self) -> None:
        """With a clock, a turn's console lines leave in one write and one flush at its end (an
        unbuffered stdout makes each write a system call); any other event is written and flushed
        at once, after the lines before it, in order."""
        from io import StringIO

        from twisted.internet.task import Clock
        from twisted.logger import Logger, LogPublisher

        from mockllm.observe.output import text_lines

        class Counted(StringIO):
            flushes = 0
            writes = 0

            def write(self, text: str) -> int:
                type(self).writes += 1
                return super().write(text)

            def flush(self) -> None:
                type(self).flushes += 1
                super().flush()

        out, clock = Counted(), Clock()
        publisher = LogPublisher(text_lines(out, clock))
        console = ConsoleLog(Logger(namespace="mockllm.requests", observer=publisher))
        for n in range(3):
            console.exchange_finished(Exchange(
                request_id=f"req_{n}", method="POST", path="/v1/chat/completions", query="", client="127.0.0.1:1",
                headers=[], body=b"", started=5.0, status=200, outcome="completed", finished_at=5.25))
        self.assertEqual((Counted.writes, Counted.flushes, out.getvalue()), (0, 0, ""))
        clock.advance(0)
        self.assertEqual((Counted.writes, Counted.flushes, len(out.getvalue().splitlines())), (1, 1, 3))
        console.exchange_finished(Exchange(
            request_id="req_3", method="POST", path="/v1/chat/completions", query="", client="127.0.0.1:1",
            headers=[], body=b"", started=5.0, status=200, outcome="completed", finished_at=5.25))
        Logger(namespace="other", observer=publisher).warn("plain")
        self.assertEqual(Counted.flushes, 2)
        clock.advance(0)
        self.assertEqual(Counted.flushes, 3)
        self.assertEqual([line.split()[-1] for line in out.getvalue().splitlines()], ["req_0", "req_1", "req_2", "req_3", "plain"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_pending_lines_written_at_shutdown(self) -> None:
        """Console lines still waiting for the end of the turn when the reactor shuts down are written then."""
        from io import StringIO

        from twisted.internet.testing import MemoryReactorClock
        from twisted.logger import Logger, LogPublisher

        from mockllm.observe.output import text_lines

        out, reactor = StringIO(), MemoryReactorClock()
        console = ConsoleLog(Logger(namespace="mockllm.requests", observer=LogPublisher(text_lines(out, reactor))))
        console.exchange_finished(Exchange(
            request_id="req_0", method="POST", path="/v1/chat/completions", query="", client="127.0.0.1:1",
            headers=[], body=b"", started=5.0, status=200, outcome="completed", finished_at=5.25))
        self.assertEqual(out.getvalue(), "")
        for trigger, args, kwargs in reactor.triggers["after"]["shutdown"]:
            trigger(*args, **kwargs)
        self.assertEqual(out.getvalue().split()[-1], "req_0")

    def test_same_text_as_twisted(self) -> None:
        """Console lines, with or without an error, and any other event are written exactly as Twisted's text observer writes them."""
        from io import StringIO

        from twisted.logger import Logger, LogPublisher, textFileLogObserver

        from mockllm.observe.output import text_lines

        ours, theirs = StringIO(), StringIO()
        publisher = LogPublisher(text_lines(ours), textFileLogObserver(theirs))
        console = ConsoleLog(Logger(namespace="mockllm.requests", observer=publisher))
        for error in (None, 'can\'t "parse"'):
            ex = Exchange(request_id="req_1", method="POST", path="/v1/chat/completions", query="", client="127.0.0.1:1",
                          headers=[], body=b"", started=5.0, status=200, outcome="completed", finished_at=5.25, error=error)
            console.exchange_finished(ex)
        Logger(namespace="other", observer=publisher).warn("plain {x}", x=1)
        Logger(namespace="mockllm.requests", observer=publisher).info("two\nlines")
        self.assertEqual(len(ours.getvalue().splitlines()), 5)
        self.assertEqual(ours.getvalue(), theirs.getvalue())
