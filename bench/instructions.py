"""
Instructions per chat completion, counted by valgrind (repeatable, whatever the machine is doing).

    python bench/instructions.py [TREE ...]               # default: this checkout
    python bench/instructions.py --baselines [TREE ...]   # the bare Klein route and twisted.web first

For each checkout TREE it runs the app in memory (a ``task.Clock``, a ``StringTransport``, the
real ``MockSite`` behind the connection limit, every default observer on) under ``valgrind --tool=callgrind`` twice, for 100 and for 600 keep-alive
``POST /v1/chat/completions`` requests, and prints the difference divided by 500: the
instructions one request costs, start-up excluded.  Give the checkout of an older commit too
(e.g. a ``git worktree``) for a before/after ratio.  Needs ``valgrind`` (Debian package).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}).encode()


def serve_baseline(kind: str, count: int) -> None:
    """Answer ``count`` requests with ``bench/servers.py``'s ``klein`` or ``bare`` site (the floors)."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from servers import make_site

    site = make_site(kind)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
    protocol.makeConnection(transport)
    for _ in range(count):
        protocol.dataReceived(_request())
        if not transport.value().startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"not a 200: {transport.value()[:200]!r}")
        transport.clear()


def _request() -> bytes:
    """The keep-alive chat completion request every count sends."""
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )


def serve_requests(count: int) -> None:
    """Answer ``count`` chat completions on one in-memory connection (run under valgrind).

    The app is composed as ``twist mockllm`` composes it: the built-in scenarios, every default
    observer (metrics, journal, the console line, written by ``twist``'s text log observer
    into ``/dev/null``), the connection limit around the site.
    """
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.logger import globalLogBeginner

    from mockllm.config import Config, ObserveConfig
    from mockllm.http.connlimit import ConnectionLimit
    from mockllm.http.routes import MockLLM
    from mockllm.http.site import MockSite
    from mockllm.observe.output import quieted, text_lines
    from mockllm.server import Observers, default_scenarios

    globalLogBeginner.beginLoggingTo([quieted(text_lines)(open(os.devnull, "w"))], redirectStandardIO=False)
    clock = Clock()
    config = Config()
    observers = Observers.from_config(ObserveConfig())
    app = MockLLM(
        config, clock, rng=random.Random(0), scenarios=default_scenarios(config, clock, seed=0),
        observers=observers.observers(), metrics=observers.metrics,
    )
    server = config.server
    site = MockSite(app.resource(), server.max_body_bytes, app.record, clock, None, None)
    factory = ConnectionLimit(site, server.max_connections, clock, app.record, observers.metrics.handshake)
    request = _request()
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
    protocol.makeConnection(transport)
    for _ in range(count):
        protocol.dataReceived(request)
        if not transport.value().startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"not a 200: {transport.value()[:200]!r}")
        transport.clear()


def count_instructions(tree: str, requests: int, serve: str = "--serve") -> int:
    """Instructions valgrind counts for a whole run of ``requests`` requests on ``tree`` (or of a baseline)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(tree), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, os.path.abspath(__file__), *serve.split(), str(requests)],
        capture_output=True, text=True, env=env, cwd=os.path.abspath(tree), check=True,
    )
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main(trees: list[str]) -> None:
    """Print instructions per request for each checkout, and each one's ratio to the first.

    ``--baselines`` first: the bare Klein route's and the bare twisted.web resource's counts too.
    """
    per_request = {}
    if trees[:1] == ["--baselines"]:
        trees = trees[1:] or ["."]
        for kind in ("klein", "bare"):
            count = (count_instructions(".", 600, f"--baseline {kind}") - count_instructions(".", 100, f"--baseline {kind}")) // 500
            print(f"bare {kind}: {count} instructions per request")
    for tree in trees:
        per_request[tree] = (count_instructions(tree, 600) - count_instructions(tree, 100)) // 500
        print(f"{tree}: {per_request[tree]} instructions per request")
    first = per_request[trees[0]]
    for tree in trees[1:]:
        print(f"ratio {tree} / {trees[0]}: {per_request[tree] / first:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_requests(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--baseline"]:
        serve_baseline(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1:] or ["."])
