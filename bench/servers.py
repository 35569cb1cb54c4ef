"""
The baseline servers the benchmarks compare mockllm with, each run in its own process:

- ``mock``: mockllm's full app (Klein routing, validation, plan, wire format) on a MockSite,
  without observers;
- ``bare``: a bare ``twisted.web`` resource on Twisted's own ``Site`` returning the same bytes a
  chat completion has;
- ``klein``: a bare Klein route on Twisted's own ``Site`` returning those bytes (Klein's
  routing and Werkzeug's URL map, nothing of mockllm's);
- ``delay``: a bare ``twisted.web`` resource that answers those bytes after ``deferLater`` of
  the ``?delay=`` milliseconds: the floor of how exactly a Twisted process can time a delay.

Usage: ``python bench/servers.py mock|bare|klein|delay PORT``.
"""

from __future__ import annotations

import random
import sys

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

#: One chat completion as mockllm renders it (``ChatCompletions().render`` of a short reply), as
#: a literal so that the baselines import nothing of mockllm (their start-up is a baseline too).
CHAT = (
    b'{"id":"chatcmpl-da2K1rnXqDq0aQAv0xAh7fuXZ4xJG","object":"chat.completion","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I\'m a mock.",'
    b'"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,'
    b'"completion_tokens":8,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
    b'"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0mock11m01"}'
)


def answer(request: object, body: bytes) -> bytes:
    """Read the request's body and set the headers a JSON answer of ``body`` has; return it."""
    request.content.read()
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


class Bare(Resource):
    """Answers every request with one precomputed chat completion."""

    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render(self, request):
        """The same bytes every time, with a content length."""
        return answer(request, self.body)


class Delayed(Bare):
    """Answers after ``deferLater`` of the request's ``?delay=`` milliseconds (default 200)."""

    def render(self, request):
        """Wait on the reactor's clock, then write the bytes."""
        delay = int(request.args.get(b"delay", [b"200"])[0]) / 1000
        d = deferLater(reactor, delay, answer, request, self.body)
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET


def klein_resource(body: bytes) -> Resource:
    """A bare Klein app with one route answering ``body``."""
    from klein import Klein

    app = Klein()

    @app.route("/v1/chat/completions", methods=["POST"])
    def chat(request):
        return answer(request, body)

    return app.resource()


class QuietSite(Site):
    """Twisted's own ``Site`` as it comes (form parsing included), without the access log."""

    def log(self, request: object) -> None:
        """No combined-log line per request."""


def make_site(kind: str) -> Site:
    """The site of server ``kind``."""
    if kind == "mock":
        from mockllm.config import Config
        from mockllm.http.routes import MockLLM
        from mockllm.http.site import MockSite

        return MockSite(MockLLM(Config(), reactor, rng=random.Random(0)).resource(), clock=reactor)
    resources = {"bare": Bare, "delay": Delayed, "klein": klein_resource}
    return QuietSite(resources[kind](CHAT))


def main(kind: str, port: int) -> None:
    """Serve ``kind`` on 127.0.0.1:``port`` until killed."""
    reactor.listenTCP(port, make_site(kind), backlog=4096, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main(sys.argv[1], int(sys.argv[2]))
