"""
Concurrent open SSE streams: memory per stream and whether every stream keeps flowing.

Starts ``twist mockllm --no-https`` with a slow stream interval, opens
``--streams`` streaming chat completions at once (asyncio, raw sockets),
waits until each has received its first content chunk, and reports the
server's resident memory before and with the streams open, per stream, and
how many streams got chunks.  Run from the checkout root:

    PYTHONPATH=. python bench/streams.py --streams 2000

:func:`timed_streams` is the timed variant ``bench/run.py`` uses: the streams are opened at
even intervals over a window, by several client processes, and each stream's time to first
content chunk and duration are measured against what the server was configured to send.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Timed:
    """One timed stream: whether it ended with ``[DONE]``, seconds to its first content chunk and to
    its end (from sending the request), and how many events it carried."""

    ok: bool
    ttft: float
    duration: float
    events: int

    def configured(self, interval: float) -> float:
        """How long the server was told to take: every event after the role chunk waits ``interval``."""
        return (self.events - 1) * interval


class _TimedProtocol(asyncio.Protocol):
    """One timed stream's connection: it keeps what arrives and notes when the first content chunk
    came, in the callback that receives it (no reader task woken per event, so the client's own cost
    per event stays small next to the server's)."""

    def __init__(self, began: float, done: asyncio.Future) -> None:
        self.began, self.done = began, done
        self.ttft, self.received = float("nan"), bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the request."""
        transport.write(REQUEST)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """Keep the bytes; note the first content chunk (the second event); close after ``[DONE]``."""
        self.received += data
        if self.ttft != self.ttft and self.received.count(b"data: ") >= 2:
            self.ttft = time.perf_counter() - self.began
        if b"data: [DONE]" in self.received[-len(data) - 12:] and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """The server closed (or reset) the connection: the stream is over, whole or not."""
        if not self.done.done():
            self.done.set_result(None)


async def timed_stream(port: int, at: float) -> Timed:
    """Open one stream at wall-clock time ``at`` and time it from before connecting; a failure is a
    ``Timed`` that is not ok."""
    await asyncio.sleep(max(0.0, at - time.time()))
    loop = asyncio.get_running_loop()
    began, done = time.perf_counter(), loop.create_future()
    protocol = _TimedProtocol(began, done)
    try:
        transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
    except OSError:
        return Timed(False, float("nan"), time.perf_counter() - began, 0)
    await done
    transport.close()
    received = bytes(protocol.received)
    ok = received.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in received
    return Timed(ok, protocol.ttft, time.perf_counter() - began, received.count(b"data: "))


def _share(port: int, starts: list[float]) -> list[Timed]:
    """One client process's streams (it raises its own file limit as far as allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run_all() -> list[Timed]:
        return await asyncio.gather(*(timed_stream(port, at) for at in starts))

    return asyncio.run(run_all())


def timed_streams(port: int, streams: int, window: float, processes: int = 2) -> list[Timed]:
    """Open ``streams`` streams evenly over ``window`` seconds from ``processes`` client processes;
    every stream's timing."""
    first = time.time() + 0.5 + 0.1 * processes
    starts = [first + i * window / streams for i in range(streams)]
    with ProcessPoolExecutor(processes) as pool:
        shares = pool.map(_share, [port] * processes, [starts[k::processes] for k in range(processes)])
        return [timed for share in shares for timed in share]


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
