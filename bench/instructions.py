"""
Instructions per chat completion, and from start to listening, counted by valgrind (repeatable,
whatever the machine is doing).

    python bench/instructions.py [TREE ...]               # default: this checkout
    python bench/instructions.py --baselines [TREE ...]   # the bare Klein route and twisted.web first
    python bench/instructions.py --startup [TREE ...]     # start to listening, vs the bare Klein route

For each checkout TREE it runs the app in memory (a ``task.Clock``, a ``StringTransport``, the
real ``MockSite`` behind the connection limit, every default observer on) under ``valgrind
--tool=callgrind`` twice, for 100 and for 1,100 keep-alive ``POST /v1/chat/completions``
requests, and prints the difference divided by 1,000: the instructions one request costs,
start-up excluded.  ``--startup`` counts a whole process instead, from its start until it listens
and stops: ``twist mockllm --no-https`` (bytecode cached, as an installed package has it) against
``bench/servers.py klein``.  Every run has ``PYTHONHASHSEED=0``, so string hashing (and with it
dict and set layouts) is the same from run to run: the counts then repeat to ~0.1 %.  Give the
checkout of an older commit too (e.g. a ``git worktree``) for a before/after ratio.  Needs
``valgrind`` (Debian package).
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
    from mockllm.observe.output import text_lines
    from mockllm.server import Observers, default_scenarios

    globalLogBeginner.beginLoggingTo([text_lines(open(os.devnull, "w"))], redirectStandardIO=False)
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


def _env(tree: str) -> dict[str, str]:
    """The environment of a counted run of checkout ``tree``: it first on the path, hashing fixed."""
    return dict(os.environ, PYTHONHASHSEED="0",
                PYTHONPATH=os.pathsep.join([os.path.abspath(tree), os.environ.get("PYTHONPATH", "")]))


def _counted(argv: list[str], env: dict[str, str], cwd: str) -> int:
    """Instructions valgrind counts for the whole of ``argv``."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                          capture_output=True, text=True, env=env, cwd=cwd, check=True)
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def count_instructions(tree: str, requests: int, serve: str = "--serve") -> int:
    """Instructions valgrind counts for a whole run of ``requests`` requests on ``tree`` (or of a baseline)."""
    argv = [sys.executable, os.path.abspath(__file__), *serve.split(), str(requests)]
    return _counted(argv, _env(tree), os.path.abspath(tree))


def per_request(tree: str, serve: str = "--serve") -> int:
    """Instructions one request costs on ``tree``: the runs of 1,100 and of 100 requests, apart, over 1,000."""
    return (count_instructions(tree, 1100, serve) - count_instructions(tree, 100, serve)) // 1000


#: A start of ``twist mockllm --no-https`` that stops as soon as it listens.
_TWIST_START = (
    "import sys; from twisted.internet import reactor; reactor.callWhenRunning(reactor.stop); "
    "from twisted.application.twist._twist import Twist; "
    "Twist.main(['twist', 'mockllm', '--no-https', '--http-port', '0'])"
)
#: A start of the bare Klein route's server that stops as soon as it listens.
_KLEIN_START = (
    "import sys; sys.path.insert(0, 'bench'); from twisted.internet import reactor; "
    "reactor.callWhenRunning(reactor.stop); import servers; servers.main('klein', 0)"
)


def startup_instructions(tree: str) -> tuple[int, int]:
    """Instructions from process start to listening: ``twist mockllm --no-https`` and the bare Klein
    route, each run once first so that its bytecode is cached (as the timed starts cache it:
    ``throughput.server_env``), hashing fixed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from throughput import server_env

    cwd = os.path.abspath(tree)
    env = dict(server_env(cwd), PYTHONHASHSEED="0")
    found = []
    for code in (_TWIST_START, _KLEIN_START):
        argv = [sys.executable, "-c", code]
        subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
        found.append(_counted(argv, env, cwd))
    return found[0], found[1]


def main(trees: list[str]) -> None:
    """Print instructions per request for each checkout, and each one's ratio to the first.

    ``--baselines`` first: the bare Klein route's and the bare twisted.web resource's counts too;
    ``--startup`` first: start-up instructions instead, with the ratio to the bare Klein route.
    """
    if trees[:1] == ["--startup"]:
        for tree in trees[1:] or ["."]:
            ours, klein = startup_instructions(tree)
            print(f"{tree}: start to listening {ours:,} instructions; bare Klein {klein:,}; ratio {ours / klein:.3f}")
        return
    counts = {}
    if trees[:1] == ["--baselines"]:
        trees = trees[1:] or ["."]
        for kind in ("klein", "bare"):
            print(f"bare {kind}: {per_request('.', f'--baseline {kind}')} instructions per request")
    for tree in trees:
        counts[tree] = per_request(tree)
        print(f"{tree}: {counts[tree]} instructions per request")
    first = counts[trees[0]]
    for tree in trees[1:]:
        print(f"ratio {tree} / {trees[0]}: {counts[tree] / first:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_requests(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--baseline"]:
        serve_baseline(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1:] or ["."])
