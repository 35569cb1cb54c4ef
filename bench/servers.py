"""
The two servers the throughput benchmark compares, each run in its own process:

- ``mock``: mockllm's full app (Klein routing, validation, plan, wire format) on a MockSite;
- ``bare``: a bare ``twisted.web`` resource returning the same bytes a chat completion has.

Usage: ``python bench/servers.py mock|bare PORT``.
"""

from __future__ import annotations

import random
import sys

from twisted.internet import reactor
from twisted.web.resource import Resource

from mockllm import wire
from mockllm.content import count_tokens
from mockllm.app import MockLLM
from mockllm.config import Config
from mockllm.listen import MockSite
from mockllm.validation import parse_chat

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


class Bare(Resource):
    """Answers every request with one precomputed chat completion."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        request = parse_chat(BODY)
        reply = "Hello! I'm a mock."
        cid = wire.completion_id("chat", random.Random())
        self.body = wire.dumps(wire.completion(request, cid, 1700000000, reply, count_tokens(reply)))

    def render(self, request):
        """The same bytes every time, with a content length."""
        request.content.read()
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % len(self.body))
        return self.body


def main(kind: str, port: int) -> None:
    """Serve ``kind`` on 127.0.0.1:``port`` until killed."""
    if kind == "mock":
        resource = MockLLM(Config(), reactor, rng=random.Random(0)).resource()
    else:
        resource = Bare()
    reactor.listenTCP(port, MockSite(resource), backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
