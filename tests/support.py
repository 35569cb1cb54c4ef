"""
Shared test helpers.

- :func:`validate` checks a body against the OpenAI schemas vendored in
  ``tests/schemas`` (copied from ``shared/openai-schemas``; see SOURCE.json).
- :func:`make_app` builds a :class:`~mockllm.http.routes.MockLLM` on a ``task.Clock``.
- :class:`RawHTTP` drives the app's real ``Site``/``HTTPChannel`` over an
  in-memory transport, so a test can read bytes as they are written and cut
  the connection at any moment.
- :func:`listen` serves an app on a real loopback socket (port 0) for the
  length of a test, and :func:`treq_client` gives a treq client whose pool is
  closed in cleanup.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

from mockllm.http.routes import MockLLM
from mockllm.config import Config
from mockllm.http.site import MockSite

SCHEMAS = Path(__file__).parent / "schemas"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return Draft202012Validator(schema)


def validate(name: str, obj: Any) -> Any:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` matches schema ``name``; return ``obj``."""
    _validator(name).validate(obj)
    return obj


class Finished(list):
    """An exchange observer that keeps every finished :class:`~mockllm.exchange.Exchange`, in order."""

    def exchange_started(self, exchange) -> None:
        """Nothing to keep yet."""

    def exchange_finished(self, exchange) -> None:
        """Keep it."""
        self.append(exchange)


def make_app(config: Config | None = None, seed: int = 0, **kwargs: Any) -> tuple[MockLLM, Clock]:
    """A seeded app on a fresh ``task.Clock`` (``kwargs`` go to :class:`MockLLM`)."""
    clock = Clock()
    clock.advance(1_700_000_000)
    app = MockLLM(config or Config(), clock, rng=random.Random(seed), **kwargs)
    return app, clock


def parse_sse(body: bytes) -> list[str]:
    """The ``data:`` payloads of a server-sent-events body, in order."""
    events = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"data: "):
            events.append(block[len(b"data: "):].decode("utf-8"))
    return events


def _dechunk(data: bytes) -> bytes:
    """Decode as much of a chunked body as has arrived."""
    out = b""
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


class RawHTTP:
    """One HTTP/1.1 connection to an app's real ``Site``, over a ``StringTransport``."""

    def __init__(self, app: MockLLM, peer: str = "127.0.0.1", resource: Any = None) -> None:
        """``resource``: what the site serves instead of ``app.resource()`` (e.g. Klein's alone)."""
        resource = resource if resource is not None else app.resource()
        self.site = MockSite(resource, app.config.server.max_body_bytes, app.record, app.clock)
        self.site.timeOut = None  # no idle timer on the real reactor
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.protocol = self.site.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def send(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> "RawHTTP":
        """Write one request; ``body`` may be bytes or JSON-able."""
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Content-Length: {len(raw)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + raw)
        return self

    @property
    def raw(self) -> bytes:
        """Everything the server has written so far."""
        return self.transport.value()

    @property
    def status(self) -> int | None:
        """The response status, once the head has been written."""
        if not self.raw.startswith(b"HTTP/1.1 "):
            return None
        return int(self.raw.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        """Response headers, lower-cased names."""
        head = self.raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}

    @property
    def body(self) -> bytes:
        """The body received so far (de-chunked when chunked)."""
        rest = self.raw.partition(b"\r\n\r\n")[2]
        if self.headers.get("transfer-encoding") == "chunked":
            return _dechunk(rest)
        return rest

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def events(self) -> list[str]:
        """The SSE payloads received so far."""
        return parse_sse(self.body)

    @property
    def complete(self) -> bool:
        """Whether the response has been finished (chunked terminator or full length)."""
        rest = self.raw.partition(b"\r\n\r\n")[2]
        if self.headers.get("transfer-encoding") == "chunked":
            return rest.endswith(b"0\r\n\r\n")
        length = self.headers.get("content-length")
        return length is not None and len(rest) >= int(length)

    def disconnect(self) -> None:
        """The client goes away."""
        self.protocol.connectionLost(Failure(ConnectionDone("client went away")))


def listen(testcase, app: MockLLM, interface: str = "127.0.0.1") -> str:
    """Serve ``app`` on a loopback port for ``testcase``; return the base URL."""
    site = MockSite(app.resource(), app.config.server.max_body_bytes, app.record, reactor)
    port = reactor.listenTCP(0, site, interface=interface)
    testcase.addCleanup(port.stopListening)
    return f"http://{interface}:{port.getHost().port}"


def treq_client(testcase):
    """A ``treq.client.HTTPClient`` on the real reactor whose pool is closed in cleanup."""
    from treq.client import HTTPClient

    pool = HTTPConnectionPool(reactor, persistent=True)
    testcase.addCleanup(pool.closeCachedConnections)
    return HTTPClient(Agent(reactor, pool=pool))
