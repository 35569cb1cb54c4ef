"""
Instructions per chat completion, counted by valgrind (repeatable, whatever the machine is doing).

    python bench/instructions.py [TREE ...]        # default: this checkout

For each checkout TREE it runs the app in memory (a ``task.Clock``, a ``StringTransport``, the
real ``MockSite``) under ``valgrind --tool=callgrind`` twice, for 100 and for 600 keep-alive
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


def serve_requests(count: int) -> None:
    """Answer ``count`` chat completions on one in-memory connection (run under valgrind)."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from mockllm.config import Config

    try:
        from mockllm.http.routes import MockLLM
        from mockllm.http.site import MockSite

        def site_for(app, clock):
            return MockSite(app.resource(), None, None, clock)
    except ImportError:  # the layout before the reshape into packages
        from mockllm.app import MockLLM
        from mockllm.listen import MockSite

        def site_for(app, clock):
            return MockSite(app.resource())

    clock = Clock()
    site = site_for(MockLLM(Config(), clock, rng=random.Random(0)), clock)
    site.timeOut = None
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
    protocol = site.buildProtocol(None)
    protocol.makeConnection(transport)
    for _ in range(count):
        protocol.dataReceived(request)
        transport.clear()


def count_instructions(tree: str, requests: int) -> int:
    """Instructions valgrind counts for a whole run of ``requests`` requests on ``tree``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(tree), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, os.path.abspath(__file__), "--serve", str(requests)],
        capture_output=True, text=True, env=env, cwd=os.path.abspath(tree), check=True,
    )
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main(trees: list[str]) -> None:
    """Print instructions per request for each checkout, and each one's ratio to the first."""
    per_request = {}
    for tree in trees:
        per_request[tree] = (count_instructions(tree, 600) - count_instructions(tree, 100)) // 500
        print(f"{tree}: {per_request[tree]} instructions per request")
    first = per_request[trees[0]]
    for tree in trees[1:]:
        print(f"ratio {tree} / {trees[0]}: {per_request[tree] / first:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_requests(int(sys.argv[2]))
    else:
        main(sys.argv[1:] or ["."])
