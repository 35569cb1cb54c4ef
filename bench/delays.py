"""
How exactly a delay is kept: ``--requests`` chat completions asking for ``?delay=200``, each on
its own connection, opened evenly over ``--window`` seconds; the overshoot of each answer
(time from sending the request to the last byte of its answer, minus 200 ms).

``bench/run.py`` compares ``twist mockllm`` with the bare ``deferLater`` server of
``bench/servers.py`` (the floor). Alone, run from the checkout root:

    PYTHONPATH=. python bench/delays.py --requests 1000 --window 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from throughput import BODY, start  # noqa: E402

DELAY_MS = 200


def delayed_request(delay_ms: int = DELAY_MS) -> bytes:
    """A chat completion request asking for ``delay_ms``, closing the connection after the answer."""
    return (
        b"POST /v1/chat/completions?delay=%d HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (delay_ms, len(BODY), BODY)
    )


async def overshoot(port: int, at: float, request: bytes) -> float:
    """Seconds past the delay that one request's answer took (``nan`` if it failed), opened at ``at``."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began = time.perf_counter()
        writer.write(request)
        answer = await reader.read()
        elapsed = time.perf_counter() - began
        writer.close()
    except OSError:
        return float("nan")
    return elapsed - DELAY_MS / 1000 if answer.startswith(b"HTTP/1.1 200") else float("nan")


async def overshoots(port: int, requests: int, window: float) -> list[float]:
    """Every request's overshoot (seconds; ``nan`` for a failure), the requests opened over ``window`` s."""
    first = time.perf_counter() + 0.2
    request = delayed_request()
    return await asyncio.gather(*(overshoot(port, first + i * window / requests, request) for i in range(requests)))


def p99(values: list[float]) -> float:
    """The 99th percentile of ``values`` (``nan`` counts as infinitely late)."""
    ordered = sorted(float("inf") if v != v else v for v in values)
    if len(ordered) < 2:
        return ordered[0] if ordered else float("nan")
    return statistics.quantiles(ordered, n=100, method="inclusive")[98]


def main() -> None:
    """Measure mockllm and the floor, print both p99 overshoots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--window", type=float, default=0.5)
    args = parser.parse_args()
    for kind in ("delay", "twist"):
        server = start(kind)
        try:
            found = asyncio.run(overshoots(server.port, args.requests, args.window))
            print(f"{kind:6} overshoot p99 {p99(found) * 1000:.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
