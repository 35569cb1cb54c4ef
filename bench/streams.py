"""
Concurrent open SSE streams: memory per stream and whether every stream keeps flowing.

Starts ``twist mockllm --no-https`` with a slow stream interval, opens
``--streams`` streaming chat completions at once (asyncio, raw sockets),
waits until each has received its first content chunk, and reports the
server's resident memory before and with the streams open, per stream, and
how many streams got chunks.  Run from the checkout root:

    PYTHONPATH=. python bench/streams.py --streams 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from throughput import free_port, rss_mib  # noqa: E402

BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "stream": True}
).encode()
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


async def open_stream(port: int, ready: list[int], hold: asyncio.Event) -> int:
    """One stream: wait for its first content chunk, hold it open, then read what else came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    received = b""
    while received.count(b"data: ") < 2:
        received += await reader.read(65536)
    ready[0] += 1
    await hold.wait()
    writer.close()
    return received.count(b"data: ")


async def run(port: int, streams: int, server_pid: int) -> None:
    """Open the streams, measure, close them."""
    ready, hold = [0], asyncio.Event()
    before = rss_mib(server_pid)
    began = time.perf_counter()
    tasks = [asyncio.create_task(open_stream(port, ready, hold)) for _ in range(streams)]
    while ready[0] < streams:
        await asyncio.sleep(0.05)
        if time.perf_counter() - began > 120:
            break
    during = rss_mib(server_pid)
    hold.set()
    counts = await asyncio.gather(*tasks, return_exceptions=True)
    flowing = sum(1 for c in counts if isinstance(c, int) and c >= 2)
    print(f"streams opened and flowing: {flowing}/{streams} in {time.perf_counter() - began:.1f} s")
    print(f"server rss: {before:.1f} MiB idle, {during:.1f} MiB with the streams open")
    print(f"per stream: {(during - before) * 1024 / streams:.1f} KiB")


def main() -> None:
    """Start the server, run, stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "twisted", "mockllm", "--no-https", "--http-port", str(port),
            "--stream-interval-ms", "500", "--max-connections", str(args.streams + 100)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(1.5)
        asyncio.run(run(port, args.streams, server.pid))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
