"""
A soak run: ``--requests`` mixed requests (plain, streamed, status faults, validation errors,
and ``fail=reset`` / ``fail=close`` when the server accepts them) over ``--connections``
keep-alive connections against ``twist mockllm --no-https``.

Every answer is checked for what its request asked (a completion, a whole stream ending in
``[DONE]``, the asked status with an OpenAI error body, a reset, an empty reply). The run is
cut into ten segments; after each one ``DELETE /__admin/requests`` must report exactly the
requests of that segment (the journal holds one segment), and at the end the request log must
hold exactly one line per request, with the statuses the client saw. The server's resident
memory after the last segment is compared with that after the first. Run from the checkout root:

    PYTHONPATH=. python bench/soak.py                       # 100000 requests, 500 connections
    PYTHONPATH=. python bench/soak.py --requests 10000 --connections 100
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(__file__))
from throughput import rss_mib, start  # noqa: E402

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
SEGMENTS = 10
#: Each kind of request: its weight in the mix, query, body, and the status the server must answer
#: (``None``: the connection ends before any status).
KINDS = {
    "plain": (50, "", CHAT, 200),
    "stream": (20, "", dict(CHAT, stream=True), 200),
    "429": (6, "?fail=429", CHAT, 429),
    "500": (4, "?fail=500", CHAT, 500),
    "503": (4, "?fail=503", CHAT, 503),
    "bad": (6, "", {"messages": CHAT["messages"]}, 400),
    "reset": (5, "?fail=reset", CHAT, None),
    "close": (5, "?fail=close", CHAT, None),
}


def request_bytes(kind: str) -> bytes:
    """The bytes of one request of ``kind``."""
    _, query, body, _ = KINDS[kind]
    data = json.dumps(body).encode()
    return (
        b"POST /v1/chat/completions%s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (query.encode(), len(data), data)
    )


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 response: status, lower-case headers, body (by length, chunked, or to EOF)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if value:
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return int(lines[0].split()[1]), headers, body


def problem(kind: str, status: int, headers: dict[bytes, bytes], body: bytes) -> str | None:
    """What is wrong with this answer to a request of ``kind`` (None: it is what was asked)."""
    expected = KINDS[kind][3]
    if status != expected:
        return f"status {status}, expected {expected}"
    try:
        if kind == "plain":
            message = json.loads(body)["choices"][0]["message"]
            return None if isinstance(message["content"], str) else "no content"
        if kind == "stream":
            events = body.split(b"\n\n")
            if events[-2:] != [b"data: [DONE]", b""]:
                return "stream does not end with [DONE]"
            chunks = [json.loads(e[len(b"data: "):]) for e in events[:-2]]
            return None if all(c["object"] == "chat.completion.chunk" for c in chunks) else "not a chunk"
        error = json.loads(body)["error"]
        if not {"message", "type", "param", "code"} <= error.keys():
            return f"error body {error}"
        if kind == "bad" and error["param"] != "model":
            return f"param {error['param']}"
        if kind == "429" and b"retry-after" not in headers:
            return "429 without retry-after"
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"{type(e).__name__}: {e}: {body[:100]!r}"
    return None


async def ended(kind: str, reader: asyncio.StreamReader) -> str | None:
    """What is wrong with how the connection ended for ``kind`` reset/close (None: as asked)."""
    try:
        data = await reader.read(65536)
    except ConnectionResetError:
        return None if kind == "reset" else "reset, expected an empty reply"
    if data:
        return f"{len(data)} bytes, expected none: {data[:60]!r}"
    return None if kind == "close" else "empty reply, expected a reset"


@dataclass
class Tally:
    """What one client process saw: requests per kind, unexpected answers (and a few examples)."""

    sent: collections.Counter = field(default_factory=collections.Counter)
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, wrong: str | None) -> None:
        """Count a request of ``kind``; ``wrong`` says what was unexpected about its answer."""
        self.sent[kind] += 1
        if wrong is not None:
            self.unexpected += 1
            if len(self.examples) < 5:
                self.examples.append(f"{kind}: {wrong}")

    def merge(self, other: "Tally") -> None:
        """Add ``other``'s counts to this one."""
        self.sent.update(other.sent)
        self.unexpected += other.unexpected
        self.examples += other.examples[: 5 - len(self.examples)]


async def connection(port: int, kinds: list[str], tally: Tally) -> None:
    """Send ``kinds`` one after another, keep-alive, reconnecting when an answer ends the connection."""
    reader = writer = None
    for kind in kinds:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(kind))
        try:
            if KINDS[kind][3] is None:
                tally.add(kind, await ended(kind, reader))
                writer.close()
                writer = None
                continue
            status, headers, body = await read_response(reader)
            tally.add(kind, problem(kind, status, headers, body))
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            tally.add(kind, f"{type(e).__name__}: {e}")
            headers = {b"connection": b"close"}
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def client(port: int, connections: int, requests: int, seed: int, kinds: tuple[str, ...]) -> Tally:
    """One client process: ``requests`` requests drawn from ``kinds`` over ``connections`` connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rng = random.Random(seed)
    weights = [KINDS[k][0] for k in kinds]
    drawn = rng.choices(kinds, weights, k=requests)
    tally = Tally()

    async def run_all() -> None:
        await asyncio.gather(*(connection(port, drawn[i::connections], tally) for i in range(connections)))

    asyncio.run(run_all())
    return tally


def admin(port: int, method: str, path: str) -> dict:
    """One admin call's JSON answer."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path)
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def accepts(port: int, kind: str) -> bool:
    """Whether the server accepts the fault of ``kind`` (it answers an unknown ``fail`` with a 400)."""
    async def probe() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(kind))
        try:
            return not (await reader.read(12)).startswith(b"HTTP/1.1 400")
        except ConnectionResetError:
            return True
        finally:
            writer.close()

    return asyncio.run(probe())


@dataclass
class SoakResult:
    """A soak run's findings."""

    requests: int
    kinds: tuple[str, ...]
    tally: Tally
    journal_mismatches: list[str]
    log_mismatch: str | None
    rss_first: float
    rss_last: float
    seconds: float

    def report(self) -> str:
        """Lines for a person."""
        return "\n".join([
            f"{self.requests} requests ({', '.join(f'{k} {self.tally.sent[k]}' for k in self.kinds)}) in {self.seconds:.0f} s",
            f"unexpected answers: {self.tally.unexpected} {self.tally.examples}",
            f"journal counts: {'exact' if not self.journal_mismatches else self.journal_mismatches}",
            f"request log: {self.log_mismatch or 'exact'}",
            f"rss after the first 10 %: {self.rss_first:.1f} MiB, after all: {self.rss_last:.1f} MiB "
            f"({self.rss_last / self.rss_first:.3f} x)",
        ])


def log_statuses(path: str) -> collections.Counter:
    """The request log's records counted by status (``None``: no status sent)."""
    with open(path) as log:
        return collections.Counter(json.loads(line)["status"] for line in log)


def soak(requests: int = 100_000, connections: int = 500, processes: int = 2, server_cpu: int | None = 0) -> SoakResult:
    """Run the soak against a fresh ``twist mockllm --no-https``; see the module docstring."""
    segment = requests // SEGMENTS
    folder = tempfile.mkdtemp(prefix="mockllm-soak-")
    log_path = os.path.join(folder, "requests.jsonl")
    extra = ["--journal-size", str(segment), "--request-log", log_path, "--request-log-max-bytes", "0",
             "--stream-interval-ms", "1", "--max-connections", str(connections + 100), "--backlog", "4096"]
    with open(os.path.join(folder, "server.log"), "w") as output:
        server = start("twist", extra=extra, cpu=server_cpu, output=output)
    expected = collections.Counter()
    try:
        kinds = tuple(k for k in KINDS if KINDS[k][1] not in ("?fail=reset", "?fail=close") or accepts(server.port, k))
        expected.update(400 for k in ("reset", "close") if k not in kinds)
        expected.update(None for k in ("reset", "close") if k in kinds)
        admin(server.port, "DELETE", "/__admin/requests")
        tally, mismatches, rss = Tally(), [], []
        began = time.perf_counter()
        with ProcessPoolExecutor(processes) as pool:
            for number in range(SEGMENTS):
                share = [segment // processes + (p < segment % processes) for p in range(processes)]
                for found in pool.map(client, [server.port] * processes, [connections // processes] * processes,
                                      share, [number * processes + p for p in range(processes)], [kinds] * processes):
                    tally.merge(found)
                time.sleep(0.05)  # the last answers' records are written as they are sent; a margin
                deleted = admin(server.port, "DELETE", "/__admin/requests")["deleted"]
                if deleted != segment:
                    mismatches.append(f"segment {number + 1}: journal had {deleted}, sent {segment}")
                rss.append(rss_mib(server.proc.pid))
        seconds = time.perf_counter() - began
    finally:
        server.stop()
    expected.update(KINDS[k][3] for k in tally.sent.elements())
    found = log_statuses(log_path)
    log_mismatch = None if found == expected else f"log {dict(found)} != sent {dict(expected)}"
    return SoakResult(segment * SEGMENTS, kinds, tally, mismatches, log_mismatch, rss[0], rss[-1], seconds)


def main() -> None:
    """Run the soak and print what it found."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    args = parser.parse_args()
    print(soak(args.requests, args.connections, args.processes).report())


if __name__ == "__main__":
    main()
