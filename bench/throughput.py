"""
Throughput of the chat route against a bare ``twisted.web`` resource, in one run.

Both servers run as child processes; an asyncio load generator (keep-alive
HTTP/1.1, ``--connections`` concurrent connections) drives each in turn for
``--seconds``, alternating for ``--rounds`` rounds so that machine noise hits
both alike.  It prints requests per second for each, the ratio mock/bare
(median over rounds), each server's start-up time and resident memory after
the load.  Run from the checkout root:

    PYTHONPATH=. python bench/throughput.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}).encode()
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


def free_port() -> int:
    """A currently free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


COMMANDS = {
    "bare": ["bench/servers.py", "bare"],
    "app": ["bench/servers.py", "mock"],
    "twist": ["-m", "twisted", "mockllm", "--no-https", "--http-port"],
}
#: Servers the other benchmarks start (bench/run.py); ``twist-tls`` is ``twist mockllm`` with its
#: default listeners (plain HTTP and mTLS), given ``--certs-dir`` and ``--https-port`` as extras.
MORE_COMMANDS = {
    "klein": ["bench/servers.py", "klein"],
    "delay": ["bench/servers.py", "delay"],
    "twist-tls": ["-m", "twisted", "mockllm", "--http-port"],
}


@dataclass
class Server:
    """A server started as a child process: it, its (first) port, and seconds until every port accepted."""

    proc: subprocess.Popen
    port: int
    startup: float

    def stop(self) -> None:
        """Kill it and reap it."""
        self.proc.kill()
        self.proc.wait()


def pinned(cpu: int | None) -> list[str]:
    """The ``taskset`` prefix that runs a command on CPU ``cpu`` (none if ``cpu`` is None or taskset is missing)."""
    if cpu is None or not shutil.which("taskset") or (os.cpu_count() or 1) <= cpu:
        return []
    return ["taskset", "-c", str(cpu)]


def wait_accepting(proc: subprocess.Popen, ports: list[int], limit: float = 30) -> None:
    """Return once every port in ``ports`` accepts a connection (or the process ended, or ``limit`` s passed)."""
    deadline = time.perf_counter() + limit
    for port in ports:
        while proc.poll() is None and time.perf_counter() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.002)


def server_env(tree: str) -> dict[str, str]:
    """The environment of a server of checkout ``tree``: it on the path, and its bytecode cached as an
    installed package's is (``PYTHONDONTWRITEBYTECODE`` would make every start compile mockllm anew,
    ~25 ms; the cache goes to a directory of its own under the temporary directory)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), f"mockllm-bench-pycache-{os.getuid()}"))
    return env


def start(kind: str, tree: str | None = None, extra: list[str] = (), more_ports: list[int] = (),
          cpu: int | None = None, output: object = subprocess.DEVNULL) -> Server:
    """Start server ``kind`` of checkout ``tree`` (default: this one) with ``extra`` arguments, on CPU
    ``cpu``; return it once its port and ``more_ports`` accept connections."""
    tree = tree or os.getcwd()
    port = free_port()
    env = server_env(tree)
    command = {**COMMANDS, **MORE_COMMANDS}[kind.partition("@")[0]]
    if command[0].startswith("bench/"):
        command = [os.path.join(tree, command[0]), *command[1:]]
    began = time.perf_counter()
    proc = subprocess.Popen(
        [*pinned(cpu), sys.executable, *command, str(port), *extra],
        stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tree,
    )
    wait_accepting(proc, [port, *more_ports])
    if proc.poll() is not None:
        raise RuntimeError(f"{kind} exited with status {proc.returncode} before it listened")
    return Server(proc, port, time.perf_counter() - began)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MiB (``field="VmHWM"``: its peak so far)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _worker(port: int, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:80])
            await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()


async def load(port: int, connections: int, seconds: float) -> float:
    """Requests per second over ``connections`` keep-alive connections for ``seconds``."""
    counts = [0]
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(*(_worker(port, deadline, counts) for _ in range(connections)))
    return counts[0] / (time.perf_counter() - began)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_load(port: int, connections: int, seconds: float, scheme: str = "http", env: dict | None = None,
             cpu: int | None = None) -> float:
    """Requests per second measured by ``wrk`` (one thread, ``connections`` connections), on CPU ``cpu``;
    ``env`` adds to its environment (e.g. the client-certificate shim, see :func:`client_cert_env`)."""
    script = f"/tmp/mockllm-bench-{os.getpid()}.lua"
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % BODY.decode())
    out = subprocess.run(
        [*pinned(cpu), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", script,
         f"{scheme}://127.0.0.1:{port}/v1/chat/completions"],
        capture_output=True, text=True, check=True, env=dict(os.environ, **(env or {})),
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_client_cert.c")


def client_cert_env(cert: str, key: str) -> dict[str, str]:
    """The environment under which ``wrk`` presents ``cert``/``key``: the LD_PRELOAD shim of
    ``bench/wrk_client_cert.c``, built once with ``cc`` into the temporary directory."""
    built = os.path.join(tempfile.gettempdir(), f"mockllm-wrk-client-cert-{os.getuid()}.so")
    if not os.path.exists(built) or os.path.getmtime(built) < os.path.getmtime(SHIM):
        subprocess.run(["cc", "-shared", "-fPIC", "-o", built, SHIM, "-ldl", "-lssl"], check=True)
    return {"LD_PRELOAD": built, "WRK_CLIENT_CERT": cert, "WRK_CLIENT_KEY": key}


def main() -> None:
    """Run the comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if installed (auto), else a Python asyncio client")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run app and twist from the checkout in DIR (e.g. a git worktree of an older commit) "
                             "and print this checkout's ratios to it")
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    print(f"load generator: {'wrk' if use_wrk else 'python asyncio'}")
    servers = {kind: start(kind) for kind in COMMANDS}
    if args.baseline:
        servers.update({f"{kind}@base": start(kind, os.path.abspath(args.baseline)) for kind in ("app", "twist")})
    rates: dict[str, list[float]] = {kind: [] for kind in servers}
    try:
        for _ in range(args.rounds):
            for kind, server in servers.items():
                if use_wrk:
                    rates[kind].append(wrk_load(server.port, args.connections, args.seconds))
                else:
                    rates[kind].append(asyncio.run(load(server.port, args.connections, args.seconds)))
        for kind, server in servers.items():
            median = statistics.median(rates[kind])
            print(f"{kind:10} {median:8.0f} req/s  start {server.startup:.2f} s  rss {rss_mib(server.proc.pid):.1f} MiB")
        pairs = [(kind, "bare") for kind in servers if kind != "bare"]
        if args.baseline:
            pairs += [("app", "app@base"), ("twist", "twist@base")]
        for kind, other in pairs:
            ratio = statistics.median(m / b for m, b in zip(rates[kind], rates[other]))
            print(f"ratio {kind}/{other}: {ratio:.2f} (median of {args.rounds} rounds, {args.connections} connections)")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
