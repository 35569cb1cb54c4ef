"""
Server hardening: the idle and header timeouts, the 431 for an oversized request-header block,
and draining the open connections when the server stops.

In memory (the site's timers on a ``task.Clock``, over ``StringTransport``) and over real
loopback sockets (raw clients, the official SDK).
"""

from __future__ import annotations

import io
import json
import random

import openai
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial import unittest

from mockllm.config import Config, ResponsesConfig, ServerConfig
from mockllm.http.drain import GracefulStop
from mockllm.http.exchanges import Lifecycle, StoppingMarker
from mockllm.http.routes import MockLLM
from mockllm.http.site import MAX_HEADER_BYTES, MAX_HEADERS, MockSite
from tests.support import CHAT_BODY, Finished, RawHTTP, make_app, parse_sse, validate

IDLE = 5.0
HEADER = 2.0
CHAT = "/v1/chat/completions"


class Connection(RawHTTP):
    """:class:`RawHTTP`'s reading helpers over one connection to a given site (timers on its clock)."""

    def __init__(self, site: MockSite) -> None:
        # RawHTTP builds a site of its own (with no idle timeout); this connects to the one given.
        self.site = site
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.protocol = site.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def write(self, data: bytes) -> "Connection":
        """Send raw bytes."""
        self.protocol.dataReceived(data)
        return self

    @property
    def closed(self) -> bool:
        """Whether the server has closed (or reset) the connection."""
        return self.transport.disconnecting

    def gone(self) -> None:
        """The closed transport is gone: the channel's ``connectionLost``, as a real transport calls it."""
        self.protocol.connectionLost(Failure(ConnectionDone("closed")))


class Received(RawHTTP):
    """:class:`RawHTTP`'s reading helpers over the bytes a real socket received."""

    def __init__(self, data: bytes) -> None:
        # No site to connect to: the response is already in.
        self.transport = StringTransport()
        self.transport.write(data)


class Server:
    """An app and a site on one ``task.Clock``; the site has the given timeouts."""

    def __init__(self, idle: float = IDLE, header: float = HEADER, responses: ResponsesConfig | None = None) -> None:
        self.finished = Finished()
        self.lifecycle = Lifecycle()
        config = Config(responses=responses or ResponsesConfig())
        self.app, self.clock = make_app(config, observers=[self.finished], lifecycle=self.lifecycle)
        self.site = MockSite(
            self.app.resource(), config.server.max_body_bytes, self.app.record, self.clock, idle, header
        )

    def connect(self) -> Connection:
        """A new connection to the site."""
        return Connection(self.site)

    def stopping(self, grace: float) -> MultiService:
        """The stopping part of the server as :func:`mockllm.server.build` composes it."""
        top = MultiService()
        StoppingMarker(self.lifecycle).setServiceParent(top)
        GracefulStop(self.site.connections, grace).setServiceParent(top)
        top.startService()
        return top

    def run_until(self, done, step: float = 0.05, limit: float = 600.0) -> float:
        """Advance the clock in ``step``s until ``done()``; the time it took."""
        start = self.clock.seconds()
        while not done():
            if self.clock.seconds() - start > limit:
                raise AssertionError("never happened")
            self.clock.advance(step)
        return self.clock.seconds() - start

    def pending(self) -> list:
        """The clock's pending calls."""
        return self.clock.getDelayedCalls()


def chat_request(query: str = "", stream: bool = False, extra: bytes = b"") -> bytes:
    """A whole chat completion request (``extra``: header lines, each ending in CRLF)."""
    body = json.dumps({**CHAT_BODY, "stream": stream}).encode()
    head = b"POST %s%s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n" % (CHAT.encode(), query.encode(), len(body))
    return head + extra + b"\r\n" + body


def models_request() -> bytes:
    """A whole ``GET /v1/models`` request."""
    return b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"


def stream_events(conn: RawHTTP) -> list[dict]:
    """The stream's chunks, each checked against the schema; asserts it ended with ``[DONE]``."""
    events = conn.events()
    assert events[-1] == "[DONE]", events[-3:]
    return [validate("CreateChatCompletionStreamResponse", json.loads(e)) for e in events[:-1]]


class IdleTimeoutTests(unittest.TestCase):
    """A connection with no request in flight for ``idle_timeout_s`` is closed; answers are never cut."""

    def test_fresh_connection_closed_when_idle(self) -> None:
        """A connection that sends nothing is closed after exactly the idle timeout, leaving no timer."""
        server = Server()
        conn = server.connect()
        server.clock.advance(IDLE - 0.01)
        self.assertFalse(conn.closed)
        server.clock.advance(0.01)
        self.assertTrue(conn.closed)
        self.assertEqual(conn.raw, b"")
        conn.gone()
        self.assertEqual(server.pending(), [])

    def test_keep_alive_clock_starts_after_each_answer(self) -> None:
        """After an answer the idle clock restarts; a request inside it is served on the same connection."""
        server = Server()
        conn = server.connect().write(models_request())
        validate("ListModelsResponse", conn.json())
        server.clock.advance(IDLE - 0.5)
        self.assertFalse(conn.closed)
        conn.transport.clear()
        conn.write(models_request())
        validate("ListModelsResponse", conn.json())
        server.clock.advance(IDLE - 0.5)
        self.assertFalse(conn.closed)
        server.clock.advance(0.5)
        self.assertTrue(conn.closed)
        conn.gone()
        self.assertEqual(server.pending(), [])

    def test_long_stream_is_not_cut(self) -> None:
        """A stream lasting many idle timeouts goes out whole; the idle clock starts when it ends."""
        server = Server(responses=ResponsesConfig(stream_interval_ms=1000))
        conn = server.connect().write(chat_request(stream=True))
        took = server.run_until(lambda: conn.complete or conn.closed, step=0.25)
        self.assertFalse(conn.closed)
        self.assertGreater(took, 3 * IDLE)
        self.assertGreater(len(stream_events(conn)), 3)
        server.clock.advance(IDLE)
        self.assertTrue(conn.closed)
        conn.gone()
        self.assertEqual(server.pending(), [])

    def test_delay_and_timeout_hold_are_not_cut(self) -> None:
        """A ``delay=`` longer than the idle timeout, and a ``fail=timeout`` hold, are answered in full."""
        server = Server()
        delayed = server.connect().write(chat_request("?delay=20000"))
        held = server.connect().write(chat_request("?fail=timeout"))
        server.clock.advance(20)
        self.assertFalse(delayed.closed)
        validate("CreateChatCompletionResponse", delayed.json())
        server.clock.advance(10)
        self.assertFalse(held.closed)
        self.assertEqual(held.status, 504)
        validate("ErrorResponse", held.json())

    def test_zero_means_never(self) -> None:
        """``idle_timeout_s`` 0: an idle connection stays open, and no idle timer is kept."""
        server = Server(idle=0)
        conn = server.connect()
        self.assertEqual(server.pending(), [])
        server.clock.advance(3600)
        self.assertFalse(conn.closed)


class HeaderTimeoutTests(unittest.TestCase):
    """A request whose headers are not all in ``header_timeout_s`` after their first byte is closed."""

    def test_slowloris_is_closed(self) -> None:
        """Headers trickling in (each byte well inside the idle timeout) are closed at the header timeout."""
        server = Server()
        conn = server.connect().write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        for _ in range(3):
            server.clock.advance(0.5)
            conn.write(b"a")
        server.clock.advance(0.45)
        self.assertFalse(conn.closed)
        server.clock.advance(0.1)
        self.assertTrue(conn.closed)
        self.assertEqual(conn.raw, b"")
        conn.gone()
        self.assertEqual(server.pending(), [])

    def test_clock_stops_once_headers_are_in(self) -> None:
        """A body arriving slowly after complete headers is not cut by the header timeout."""
        server = Server()
        whole = chat_request()
        head, _, body = whole.partition(b"\r\n\r\n")
        conn = server.connect().write(head[:20])  # the header clock starts
        server.clock.advance(HEADER / 2)
        conn.write(head[20:] + b"\r\n\r\n")
        for byte in body:
            server.clock.advance(0.5)
            conn.write(bytes([byte]))
            if conn.closed:
                break
        self.assertFalse(conn.closed)
        validate("CreateChatCompletionResponse", conn.json())

    def test_clock_starts_at_each_request(self) -> None:
        """On a keep-alive connection the header clock starts at the next request's first byte."""
        server = Server()
        conn = server.connect().write(models_request())
        server.clock.advance(IDLE - 1)
        conn.write(b"GET /v1/models HTTP/1.1\r\n")
        server.clock.advance(HEADER - 0.01)
        self.assertFalse(conn.closed)
        server.clock.advance(0.01)
        self.assertTrue(conn.closed)

    def test_no_header_timer_once_answered(self) -> None:
        """A request sent whole leaves only the idle timer behind (the header clock never waits)."""
        server = Server()
        conn = server.connect().write(models_request())
        validate("ListModelsResponse", conn.json())
        self.assertEqual([call.func.__name__ for call in server.pending()], ["__timedOut"])

    def test_zero_means_never(self) -> None:
        """``header_timeout_s`` 0: trickling headers are only subject to the idle timeout."""
        server = Server(header=0)
        conn = server.connect().write(b"GET /v1/models HTTP/1.1\r\n")
        for _ in range(30):
            server.clock.advance(IDLE - 1)
            conn.write(b"X-A: b\r\n")
        self.assertFalse(conn.closed)
        conn.write(b"\r\n")
        validate("ListModelsResponse", conn.json())


def padded_headers(block: int) -> bytes:
    """Header lines making the request-header block of :func:`chat_request` exactly ``block`` bytes."""
    base = chat_request()
    head = base.partition(b"\r\n\r\n")[0]
    used = sum(len(line) for line in head.split(b"\r\n"))
    lines, left = [], block - used
    while left > 0:
        size = 1000 if left >= 1020 else left  # the last line keeps room for its name
        name = b"X-Pad-%03d: " % len(lines)
        lines.append(name + b"a" * (size - len(name)))
        left -= size
    return b"".join(line + b"\r\n" for line in lines)


class HeaderLimitTests(unittest.TestCase):
    """A header block over 64 KiB or with more than 100 fields gets an OpenAI-shaped 431, then the close."""

    def assert_431(self, server: Server, conn: Connection) -> None:
        """The answer is the 431, the connection closes, the refusal is recorded."""
        self.assertEqual(conn.status, 431)
        self.assertIn(b"431 Request Header Fields Too Large", conn.raw.split(b"\r\n")[0])
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertEqual((error["type"], error["code"]), ("invalid_request_error", "request_header_fields_too_large"))
        self.assertIn("65536 bytes", error["message"])
        self.assertEqual(conn.headers["connection"], "close")
        self.assertTrue(conn.headers["x-request-id"].startswith("req_"))
        self.assertTrue(conn.closed)
        self.assertEqual([(ex.status, ex.outcome) for ex in server.finished], [(431, "refused")])
        answered = conn.raw
        conn.write(b"X-More: " + b"b" * 5000 + b"\r\n\r\n" + models_request())
        self.assertEqual(conn.raw, answered)
        conn.gone()
        self.assertEqual(server.pending(), [])

    def test_block_at_the_limit_is_served(self) -> None:
        """A block of exactly 64 KiB (and 60 KiB) is served as usual."""
        for size in (60 * 1024, MAX_HEADER_BYTES):
            server = Server()
            conn = server.connect().write(chat_request(extra=padded_headers(size)))
            self.assertEqual(conn.status, 200, size)
            validate("CreateChatCompletionResponse", conn.json())

    def test_block_over_the_limit_gets_431(self) -> None:
        """One byte over 64 KiB, spread over many header lines: the 431."""
        server = Server()
        conn = server.connect().write(chat_request(extra=padded_headers(MAX_HEADER_BYTES + 1)))
        self.assert_431(server, conn)
        self.assertEqual(server.finished[0].path, CHAT)

    def test_one_huge_line_gets_431(self) -> None:
        """A single header line longer than the whole block may be: the 431 (Twisted alone would hang up)."""
        server = Server()
        conn = server.connect().write(chat_request(extra=b"X-Huge: " + b"h" * (70 * 1024) + b"\r\n"))
        self.assert_431(server, conn)

    def test_header_count(self) -> None:
        """100 header fields are served; 101 get the 431."""
        def request(count: int) -> bytes:
            # chat_request has Host and Content-Length.
            return chat_request(extra=b"".join(b"X-H%d: v\r\n" % i for i in range(count - 2)))

        server = Server()
        served = server.connect().write(request(MAX_HEADERS))
        validate("CreateChatCompletionResponse", served.json())
        server = Server()
        self.assert_431(server, server.connect().write(request(MAX_HEADERS + 1)))


class DrainTests(unittest.TestCase):
    """Stopping: idle and waiting connections close at once, answers get the grace, then the rest is cut."""

    def test_idle_connections_close_at_once(self) -> None:
        """Idle, kept-alive and half-sent connections close at once; the stop waits until they are gone."""
        server = Server()
        fresh = server.connect()
        kept = server.connect().write(models_request())
        half = server.connect().write(b"GET /v1/models HTTP/1.1\r\nHost: x")
        stopped = server.stopping(grace=5).stopService()
        self.assertTrue(all(conn.closed for conn in (fresh, kept, half)))
        self.assertNoResult(stopped)
        for conn in (fresh, kept, half):
            conn.gone()
        self.successResultOf(stopped)
        self.assertEqual(server.pending(), [])

    def test_stream_finishes_within_the_grace(self) -> None:
        """A stream in flight goes out whole, then its connection closes, then the stop is done."""
        server = Server(responses=ResponsesConfig(stream_interval_ms=100))
        conn = server.connect().write(chat_request(stream=True))
        server.clock.advance(0.25)
        stopped = server.stopping(grace=5).stopService()
        self.assertFalse(conn.closed)
        took = server.run_until(lambda: conn.closed, step=0.05)
        self.assertLess(took, 5)
        self.assertTrue(conn.complete)
        self.assertGreater(len(stream_events(conn)), 3)
        self.assertNoResult(stopped)
        conn.gone()
        self.successResultOf(stopped)
        self.assertEqual([ex.outcome for ex in server.finished], ["completed"])
        self.assertEqual(server.pending(), [])

    def test_short_delay_is_answered_with_connection_close(self) -> None:
        """A delay ending inside the grace is answered, saying ``Connection: close``."""
        server = Server()
        conn = server.connect().write(chat_request("?delay=2000"))
        server.stopping(grace=5).stopService()
        server.clock.advance(1.99)
        self.assertEqual(conn.raw, b"")
        server.clock.advance(0.01)
        validate("CreateChatCompletionResponse", conn.json())
        self.assertEqual(conn.headers["connection"], "close")
        self.assertTrue(conn.closed)

    def test_waits_past_the_grace_end_at_once(self) -> None:
        """A ``fail=timeout`` hold and a long delay are closed at once, recorded as cut by the shutdown."""
        server = Server()
        held = server.connect().write(chat_request("?fail=timeout"))
        delayed = server.connect().write(chat_request("?delay=60000"))
        stopped = server.stopping(grace=5).stopService()
        self.assertTrue(held.closed and delayed.closed)
        self.assertEqual((held.raw, delayed.raw), (b"", b""))
        held.gone()
        delayed.gone()
        self.successResultOf(stopped)
        self.assertEqual([ex.outcome for ex in server.finished], ["server-shutdown"] * 2)
        self.assertEqual(server.pending(), [])

    def test_grace_over_cuts_the_rest(self) -> None:
        """A stream still going when the grace ends is reset then; nothing is left pending."""
        server = Server(responses=ResponsesConfig(stream_interval_ms=1000))
        conn = server.connect().write(chat_request(stream=True))
        stopped = server.stopping(grace=3).stopService()
        server.clock.advance(2.99)
        self.assertFalse(conn.closed)
        server.clock.advance(0.01)
        self.assertTrue(conn.transport.disconnected)  # StringTransport's mark of abortConnection
        self.assertFalse(conn.complete)
        conn.gone()
        self.successResultOf(stopped)
        self.assertEqual([ex.outcome for ex in server.finished], ["server-shutdown"])
        self.assertEqual(server.pending(), [])

    def test_nothing_open_stops_at_once(self) -> None:
        """With no connection open the stop is done at once, with no timer."""
        server = Server()
        self.successResultOf(server.stopping(grace=5).stopService())
        self.assertEqual(server.pending(), [])


# --- over real sockets -----------------------------------------------------------------


class Raw(Protocol):
    """A raw client: keeps what arrives, and when and how the connection ended."""

    def __init__(self) -> None:
        self.data = b""
        self.ended: Deferred[float] = Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        """Keep the bytes."""
        self.data += data

    def connectionLost(self, reason: Failure) -> None:
        """Note how and when it ended."""
        self.reason = reason
        self.ended.callback(reactor.seconds())


class SocketCase(unittest.TestCase):
    """Base: a server on a loopback port and raw clients of it, all closed by the end of the test."""

    timeout = 30

    def serve(self, idle: float, header: float, responses: ResponsesConfig | None = None) -> MockSite:
        """A site on the real reactor on a loopback port; cleanup waits until its connections are gone."""
        config = Config(server=ServerConfig(idle_timeout_s=idle, header_timeout_s=header),
                        responses=responses or ResponsesConfig())
        app = MockLLM(config, reactor, rng=random.Random(0))
        site = MockSite(app.resource(), config.server.max_body_bytes, app.record, reactor, idle, header)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.port = port.getHost().port
        self.addCleanup(port.stopListening)
        self.addCleanup(self._all_gone, site)
        self.base = f"http://127.0.0.1:{self.port}"
        return site

    async def _all_gone(self, site: MockSite) -> None:
        for _ in range(200):
            if not len(site.connections):
                return
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"{len(site.connections)} connections still open")

    async def connect(self) -> Raw:
        """A raw client connected to the site (reset in cleanup if still open)."""
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), Raw())
        self.addCleanup(lambda: client.ended.called or client.transport.abortConnection())
        return client

    async def until(self, done) -> None:
        """Wait (on the reactor) until ``done()``."""
        for _ in range(400):
            if done():
                return
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("never happened")


class SocketTests(SocketCase):
    """The timeouts and the 431 over real loopback sockets, with raw clients and the official SDK."""

    async def test_idle_keep_alive_connection_gets_eof(self) -> None:
        """A kept-alive connection left idle gets a clean EOF after the idle timeout (0.5 s)."""
        self.serve(idle=0.5, header=5)
        client = await self.connect()
        client.transport.write(models_request())
        await self.until(lambda: b'"object":"list"' in client.data.replace(b" ", b""))
        answered = reactor.seconds()
        ended = await client.ended
        self.assertTrue(client.reason.check(ConnectionDone))
        self.assertGreaterEqual(ended - answered, 0.4)
        self.assertLess(ended - answered, 2.5)

    async def test_slowloris_is_closed(self) -> None:
        """Headers sent a byte every 0.1 s are closed at the header timeout (0.5 s), with nothing answered."""
        self.serve(idle=5, header=0.5)
        client = await self.connect()
        client.transport.write(b"POST /v1/chat/completions HTTP/1.1\r\nX-Slow: ")
        started = reactor.seconds()
        drip = LoopingCall(client.transport.write, b"a")
        drip.start(0.1)
        self.addCleanup(lambda: drip.running and drip.stop())
        ended = await client.ended
        drip.stop()
        self.assertEqual(client.data, b"")
        self.assertGreaterEqual(ended - started, 0.45)
        self.assertLess(ended - started, 2.5)

    async def test_long_stream_is_not_cut(self) -> None:
        """A stream lasting several idle timeouts (0.3 s) arrives whole, ending with ``[DONE]``."""
        self.serve(idle=0.3, header=0.3, responses=ResponsesConfig(stream_interval_ms=60))
        client = await self.connect()
        started = reactor.seconds()
        client.transport.write(chat_request(stream=True))
        await self.until(lambda: client.data.endswith(b"0\r\n\r\n") or client.ended.called)
        self.assertGreater(reactor.seconds() - started, 3 * 0.3)
        conn = Received(client.data)
        self.assertEqual(conn.status, 200)
        self.assertGreater(len(stream_events(conn)), 3)
        client.transport.loseConnection()

    async def test_sdk_gets_431_for_huge_headers(self) -> None:
        """The SDK with 70 KB of headers gets an ``APIStatusError`` 431 (not retried); with 60 KB it is served."""
        self.serve(idle=5, header=5)

        def call(pad: int):
            client = openai.OpenAI(base_url=self.base + "/v1", api_key="sk-test", timeout=10, max_retries=2,
                                   default_headers={"X-Pad": "p" * pad})
            try:
                return client.chat.completions.create(model="gpt-4o-mini", messages=CHAT_BODY["messages"])
            finally:
                client.close()

        with self.assertRaises(openai.APIStatusError) as caught:
            await deferToThread(call, 70_000)
        self.assertEqual(caught.exception.status_code, 431)
        self.assertEqual(caught.exception.code, "request_header_fields_too_large")
        completion = await deferToThread(call, 60_000)
        self.assertEqual(completion.choices[0].message.role, "assistant")


# --- configuration -----------------------------------------------------------------------


class ConfigurationTests(unittest.TestCase):
    """The three settings: options, ``[server]`` keys, ``--print-config``, ``--help`` and the built server."""

    def options(self, *args: str):
        """``twist mockllm`` options parsed from ``args``."""
        from mockllm import tap

        options = tap.Options()
        options.parseOptions(["--no-https", *args])
        return options

    def test_defaults_and_options(self) -> None:
        """Defaults 60, 10 and 5 seconds; the options set decimal seconds; 0 is allowed."""
        from mockllm import tap

        server = tap.config_from_options(self.options()).server
        self.assertEqual((server.idle_timeout_s, server.header_timeout_s, server.shutdown_grace_s), (60, 10, 5))
        given = self.options("--idle-timeout-s", "0.5", "--header-timeout-s", "0", "--shutdown-grace-s", "12.5")
        server = tap.config_from_options(given).server
        self.assertEqual((server.idle_timeout_s, server.header_timeout_s, server.shutdown_grace_s), (0.5, 0, 12.5))

    def test_bad_option_values(self) -> None:
        """A negative, non-numeric, infinite or over-an-hour value is a usage error naming the option."""
        from twisted.python import usage

        for value in ("-1", "soon", "inf", "nan", "3601"):
            with self.assertRaises(usage.UsageError) as caught:
                self.options("--idle-timeout-s", value)
            self.assertIn("--idle-timeout-s", str(caught.exception))

    def test_toml_keys(self) -> None:
        """``[server]`` takes the three keys; a bad value names the key and what was expected."""
        from mockllm.config.toml import parse_config

        server = parse_config({"server": {"idle_timeout_s": 2, "header_timeout_s": 0.25, "shutdown_grace_s": 0}}).server
        self.assertEqual((server.idle_timeout_s, server.header_timeout_s, server.shutdown_grace_s), (2.0, 0.25, 0.0))
        with self.assertRaises(ValueError) as caught:
            parse_config({"server": {"shutdown_grace_s": "5"}})
        self.assertIn("[server] shutdown_grace_s: expected a number from 0 to 3600", str(caught.exception))

    def test_print_config_and_help(self) -> None:
        """``--print-config`` shows each key with its default and meaning; ``--help`` lists each option."""
        from mockllm import tap
        from mockllm.config.describe import render

        text = render()
        for line in ("idle_timeout_s = 60.0", "header_timeout_s = 10.0", "shutdown_grace_s = 5.0"):
            self.assertIn(line, text)
        self.assertIn("# On SIGTERM, how long requests in flight may take to finish", text)
        usage_text = " ".join(str(tap.Options()).split())
        for option in ("--idle-timeout-s", "--header-timeout-s", "--shutdown-grace-s"):
            self.assertIn(option, usage_text)
        self.assertIn("(0: never)", usage_text)

    def test_built_server_uses_them(self) -> None:
        """:func:`mockllm.server.build` gives the site the timeouts and drains with the grace."""
        from twisted.internet.task import Clock

        from mockllm.http.connlimit import ConnectionLimit
        from mockllm.http.listen import ListenerService
        from mockllm.observe.journal import Journal
        from mockllm.observe.metrics import Metrics
        from mockllm.server import Listener, Observers, build, default_scenarios

        config = Config(server=ServerConfig(idle_timeout_s=7, header_timeout_s=3, shutdown_grace_s=2))
        clock = Clock()
        observers = Observers(Journal(10), Metrics(()), console=False)
        top, _ = build(config, clock, default_scenarios(config, clock), observers, None, [Listener("tcp:0", "t")])
        listener = next(s for s in top if isinstance(s, ListenerService))
        site = listener.factory.wrappedFactory
        self.assertIsInstance(listener.factory, ConnectionLimit)
        self.assertEqual((site.timeOut, site.header_timeout_s), (7, 3))
        drains = [s for s in top if isinstance(s, GracefulStop)]
        self.assertEqual([(d.connections, d.grace_s) for d in drains], [(site.connections, 2)])


class ProcessTests(SocketCase):
    """The same limits on the real ``twist mockllm`` (behind its connection limit), set on the command line."""

    timeout = 60

    async def test_command_line_limits(self) -> None:
        """``--idle-timeout-s 0.5 --header-timeout-s 0.5``: idle EOF, slowloris closed, 431 logged as refused."""
        import os
        from urllib.parse import urlsplit

        from tests.processes import spawn

        cwd = self.mktemp()
        os.makedirs(cwd)
        server = spawn(self, ["--no-https", "--http-port", "0", "--idle-timeout-s", "0.5", "--header-timeout-s", "0.5",
                              "--request-log", "requests.jsonl"], cwd)
        self.port = urlsplit(await server.ready).port
        idle, slow, huge = await self.connect(), await self.connect(), await self.connect()
        started = reactor.seconds()
        idle.transport.write(models_request())
        slow.transport.write(b"GET /v1/models HTTP/1.1\r\nHost: x")
        huge.transport.write(chat_request(extra=padded_headers(MAX_HEADER_BYTES + 1)))
        for client in (idle, slow, huge):
            ended = await client.ended
            self.assertLess(ended - started, 2.5)
        self.assertIn(b'"object":"list"', idle.data.replace(b" ", b""))
        self.assertEqual(slow.data, b"")
        self.assertEqual(Received(huge.data).status, 431)
        self.assertEqual(await server.stop(), 0)
        with open(os.path.join(cwd, "requests.jsonl")) as f:
            records = sorted((r["path"], r["status"], r["outcome"]) for r in map(json.loads, f))
        self.assertEqual(records, [("/v1/chat/completions", 431, "refused"), ("/v1/models", 200, "completed")])


class HandshakeReportTests(unittest.TestCase):
    """Closing an idle mTLS connection is not mistaken for the client refusing the server's certificate."""

    def served(self, server: Server) -> tuple[object, StringTransport, list[tuple[bool, str]]]:
        """A connection through the connection limit after a good TLS handshake, and the outcomes reported."""
        from mockllm.http.connlimit import ConnectionLimit

        seen: list[tuple[bool, str]] = []
        limit = ConnectionLimit(server.site, 10, server.clock, server.app.record, lambda ok, why: seen.append((ok, why)))
        served = limit.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        served.makeConnection(transport)
        served.handshake(True, "ok", "CN=client")
        return served, transport, seen

    def test_idle_close_after_handshake_counts_as_accepted(self) -> None:
        """A client idle after a good handshake, closed by the idle timeout, is counted accepted, not refused."""
        server = Server()
        served, transport, seen = self.served(server)
        server.clock.advance(IDLE)
        self.assertTrue(transport.disconnecting)
        served.connectionLost(Failure(ConnectionDone("closed")))
        self.assertEqual(seen, [(True, "ok")])
        self.assertEqual(server.pending(), [])

    def test_client_closing_after_handshake_still_refuses(self) -> None:
        """A client that closes after the handshake without a request still counts as refusing it."""
        server = Server()
        served, _, seen = self.served(server)
        served.connectionLost(Failure(ConnectionDone("closed")))
        self.assertEqual(seen, [(False, "closed-without-request")])


class RequestBodyBufferTests(unittest.TestCase):
    """The site keeps request bodies where Twisted's own default would: small ones in memory, the
    rest (large or chunked) in a temporary file, and every one of them is read whole."""

    def test_where_bodies_go(self) -> None:
        """Under 100 kB: in memory; from 100 kB or of unknown length: a real file."""
        site = Server().site
        self.assertIsInstance(site.getContentFile(99_999), io.BytesIO)
        for length in (100_000, None):
            with site.getContentFile(length) as kept:
                self.assertNotIsInstance(kept, io.BytesIO)
                kept.write(b"x")
                kept.seek(0)
                self.assertEqual(kept.read(), b"x")

    def test_large_and_chunked_bodies_answered(self) -> None:
        """A 200 kB chat body and a chunked one are answered 200, their prompts counted whole."""
        words = "word " * 40_000
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": words}]}).encode()
        large = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (CHAT.encode(), len(body), body)
        chunked = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            CHAT.encode(), len(body), body)
        for request in (large, chunked):
            conn = Server().connect().write(request)
            self.assertEqual(conn.status, 200)
            self.assertGreater(conn.json()["usage"]["prompt_tokens"], 40_000)


class LocalAddressTests(unittest.TestCase):
    """Each request knows the connection's local and remote addresses; the channel asks the transport for each once."""

    def assertAskedOnce(self, method: str) -> None:
        """Three keep-alive requests (each asks the channel as it is made) get the transport's answer to
        ``method``, which the channel asked the transport for once."""
        asked = []
        conn = Server().connect()
        real = getattr(conn.transport, method)
        setattr(conn.transport, method, lambda: asked.append(1) or real())
        seen = []
        for _ in range(3):
            conn.write(chat_request())
            seen.append(getattr(conn.protocol, method)())
        self.assertEqual(conn.status, 200)
        self.assertEqual(seen, [real()] * 3)
        self.assertEqual(len(asked), 1)

    def test_asked_once_per_connection(self) -> None:
        """The local address (``getHost``), asked of the transport once per connection."""
        self.assertAskedOnce("getHost")

    def test_peer_asked_once_per_connection(self) -> None:
        """The peer's address (``getPeer``, each request's client), asked of the transport once per connection."""
        self.assertAskedOnce("getPeer")
