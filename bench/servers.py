"""
The two servers the throughput benchmark compares, each run in its own process:

- ``mock``: mockllm's full app (Klein routing, validation, plan, wire format) on a MockSite;
- ``bare``: a bare ``twisted.web`` resource on Twisted's own ``Site`` returning the same bytes a
  chat completion has.

Usage: ``python bench/servers.py mock|bare PORT``.
"""

from __future__ import annotations

import random
import sys

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from mockllm.behaviour.reply import Reply, Stamp
from mockllm.config import Config
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.openai import new_id
from mockllm.http.routes import MockLLM
from mockllm.http.site import MockSite

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


class Bare(Resource):
    """Answers every request with one precomputed chat completion."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        dialect = ChatCompletions()
        request = dialect.parse_body(BODY, None)
        stamp = Stamp(new_id("chatcmpl-", random.Random()), 1700000000)
        self.body = dialect.render(request, Reply.of_text("Hello! I'm a mock."), stamp)

    def render(self, request):
        """The same bytes every time, with a content length."""
        request.content.read()
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % len(self.body))
        return self.body


class QuietSite(Site):
    """Twisted's own ``Site`` as it comes (form parsing included), without the access log."""

    def log(self, request: object) -> None:
        """No combined-log line per request."""


def main(kind: str, port: int) -> None:
    """Serve ``kind`` on 127.0.0.1:``port`` until killed."""
    if kind == "mock":
        site = MockSite(MockLLM(Config(), reactor, rng=random.Random(0)).resource(), clock=reactor)
    else:
        site = QuietSite(Bare())
    reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
