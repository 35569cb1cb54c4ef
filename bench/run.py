"""
Every figure of issue 13's targets against its baseline, in one run, as one table.

    PYTHONPATH=. python bench/run.py                 # --mode quick: smaller sizes, a few minutes
    PYTHONPATH=. python bench/run.py --mode full     # the issue's sizes (10,000 streams, 100,000-request soak)
    PYTHONPATH=. python bench/run.py --skip soak,streams

Servers run pinned to CPU 0 and every load generator (``wrk``, the asyncio clients, this
process) to the last CPU. The table (figure | ours | baseline | ratio | target | met?) is printed
and written, with the machine's CPU count, Python, Twisted and Klein versions and the git
commit, to ``OUT.md`` and ``OUT.json`` (``--out``; default ``bench/results/run-<UTC time>``).
See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delays import overshoots, p99  # noqa: E402
from soak import soak  # noqa: E402
from streams import timed_streams  # noqa: E402
from throughput import REQUEST, client_cert_env, free_port, rss_mib, start, wrk_load  # noqa: E402

SERVER_CPU = 0


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is in one mode."""

    seconds: float  # per wrk run
    rounds: int  # alternating rounds of each throughput comparison
    connections: int  # wrk connections
    streams: int
    stream_window: float  # seconds over which the streams are opened
    stream_interval_ms: int
    delay_requests: int
    delay_windows: tuple[float, ...]  # seconds over which the delayed requests are opened
    startups: int  # start-ups timed per server
    soak_requests: int
    soak_connections: int


MODES = {
    "smoke": Sizes(1, 1, 10, 40, 0.2, 20, 40, (0.1,), 1, 400, 20),
    "quick": Sizes(3, 2, 50, 2000, 2, 200, 1000, (0.5, 2.0), 5, 10_000, 100),
    "full": Sizes(2, 9, 50, 10_000, 5, 1000, 1000, (0.5, 2.0), 10, 100_000, 500),
}
GROUPS = ("throughput", "mtls", "streams", "delay", "startup", "rss", "soak")


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, ours and the baseline's values, their ratio, the target."""

    figure: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None

    def cells(self) -> list[str]:
        """The row as table cells."""
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: "n/a"}[self.met]
        return [self.figure, self.ours, self.baseline, ratio, self.target, met]


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over rounds of ours/theirs (each round measured both, back to back)."""
    return statistics.median(o / t for o, t in zip(ours, theirs))


def twist_args(sizes: Sizes) -> list[str]:
    """Options every ``twist mockllm`` of the run gets beyond the defaults: room for the connections."""
    return ["--max-connections", str(max(1000, sizes.streams + 100)), "--backlog", "4096"]


class Run:
    """One run: the sizes, a scratch directory (certificates, server output), and the rows found."""

    def __init__(self, sizes: Sizes, scratch: str) -> None:
        self.sizes = sizes
        self.scratch = scratch
        self.certs = os.path.join(scratch, "certs")
        self.rows: list[Row] = []

    def server(self, kind: str, extra: list[str] = (), more_ports: list[int] = ()):
        """Start ``kind`` on the server CPU, its output appended to a file in the scratch directory."""
        with open(os.path.join(self.scratch, f"{kind}.log"), "a") as output:
            return start(kind, extra=list(extra), more_ports=list(more_ports), cpu=SERVER_CPU, output=output)

    def default_listeners(self):
        """``twist mockllm`` with its default listeners (plain HTTP and mTLS, certificates in the scratch
        directory); returns it and its mTLS port."""
        https = free_port()
        extra = ["--certs-dir", self.certs, "--https-port", str(https), *twist_args(self.sizes)]
        return self.server("twist-tls", extra, [https]), https

    def throughput(self) -> None:
        """Keep-alive chat throughput of ``twist mockllm --no-https`` vs a bare Klein route and a bare twisted.web resource."""
        s = self.sizes
        servers = {kind: self.server(kind, twist_args(s) if kind == "twist" else []) for kind in ("twist", "klein", "bare")}
        rates = {kind: [] for kind in servers}
        try:
            for _ in range(s.rounds):
                for kind, server in servers.items():
                    rates[kind].append(wrk_load(server.port, s.connections, s.seconds))
        finally:
            for server in servers.values():
                server.stop()
        ours = f"{statistics.median(rates['twist']):.0f} req/s"
        for kind, label, goal in (("klein", "bare Klein route", 0.85), ("bare", "bare twisted.web", 0.6)):
            ratio = median_ratio(rates["twist"], rates[kind])
            self.rows.append(Row(f"keep-alive chat throughput, plain HTTP, vs {label}", ours,
                                 f"{statistics.median(rates[kind]):.0f} req/s", ratio, f">= {goal} x", ratio >= goal))

    def mtls(self) -> None:
        """Keep-alive throughput over mTLS vs plain HTTP, one server with its default listeners, both driven by wrk."""
        s = self.sizes
        server, https = self.default_listeners()
        env = client_cert_env(os.path.join(self.certs, "client.pem"), os.path.join(self.certs, "client.key"))
        plain, secured = [], []
        try:
            for _ in range(s.rounds):
                plain.append(wrk_load(server.port, s.connections, s.seconds))
                secured.append(wrk_load(https, s.connections, s.seconds, scheme="https", env=env))
        finally:
            server.stop()
        ratio = median_ratio(secured, plain)
        self.rows.append(Row("keep-alive chat throughput over mTLS (wrk with a client certificate)",
                             f"{statistics.median(secured):.0f} req/s", f"{statistics.median(plain):.0f} req/s plain",
                             ratio, ">= 0.8 x our plain", ratio >= 0.8))

    def streams(self) -> None:
        """Many SSE streams opened over a window, twice on one server: failures, TTFT, duration, memory."""
        s = self.sizes
        interval = s.stream_interval_ms / 1000
        server = self.server("twist", ["--stream-interval-ms", str(s.stream_interval_ms), *twist_args(s)])
        try:
            first = timed_streams(server.port, s.streams, s.stream_window)
            after_first = rss_mib(server.proc.pid)
            second = timed_streams(server.port, s.streams, s.stream_window)
            after_second, peak = rss_mib(server.proc.pid), rss_mib(server.proc.pid, "VmHWM")
        finally:
            server.stop()
        name = f"{s.streams} streams, {s.stream_interval_ms} ms apart, opened over {s.stream_window:g} s"
        failed = sum(not t.ok for t in first + second)
        good = [t for t in first if t.ok] or first
        ttft = p99([t.ttft for t in good])
        stretch = p99([t.duration / t.configured(interval) for t in good])
        events = statistics.median(t.events for t in good)
        self.rows += [
            Row(f"{name}: failures (both runs)", str(failed), "", None, "0", failed == 0),
            Row(f"{name}: TTFT p99", f"{ttft * 1000:.0f} ms", f"{s.stream_interval_ms} ms configured",
                ttft / interval, f"<= configured + 100 ms", ttft <= interval + 0.1),
            Row(f"{name}: stream duration p99 / configured", f"{stretch:.3f} x",
                f"{events:.0f} events x {s.stream_interval_ms} ms", stretch, "<= 1.02 x", stretch <= 1.02),
            Row(f"{name}: peak RSS", f"{peak:.1f} MiB", "", None, "<= 300 MiB", peak <= 300),
            Row(f"{name}: RSS growth on a second run", f"{after_second:.1f} MiB", f"{after_first:.1f} MiB after the first",
                after_second / after_first, "< 1.05 x", after_second / after_first < 1.05),
        ]

    def delay(self) -> None:
        """``delay=200`` overshoot p99 of twist mockllm vs the bare ``deferLater`` server, for two opening windows."""
        n = self.sizes.delay_requests
        servers = {kind: self.server(kind, twist_args(self.sizes) if kind == "twist" else []) for kind in ("twist", "delay")}
        try:
            for window in self.sizes.delay_windows:
                found = {kind: p99(asyncio.run(overshoots(server.port, n, window))) for kind, server in servers.items()}
                ours, floor = found["twist"], found["delay"]
                self.rows.append(Row(
                    f"delay=200, {n} concurrent opened over {window:g} s: overshoot p99", f"{ours * 1000:.1f} ms",
                    f"{floor * 1000:.1f} ms (deferLater)", ours / floor if floor > 0 else None,
                    "<= 2 x floor + 2 ms", ours <= 2 * floor + 0.002,
                ))
        finally:
            for server in servers.values():
                server.stop()

    def startup(self) -> None:
        """Process start to every listener accepting: plain and default listeners (existing certificates) vs bare Klein."""
        self.default_listeners()[0].stop()  # makes the certificates, so the timed starts find them
        times = {"klein": [], "plain": [], "default": []}
        for _ in range(self.sizes.startups):
            for kind, begin in (("klein", lambda: self.server("klein")), ("plain", lambda: self.server("twist")),
                                ("default", lambda: self.default_listeners()[0])):
                server = begin()
                times[kind].append(server.startup)
                server.stop()
        klein = statistics.median(times["klein"])
        for kind, label, goal in (("plain", "plain HTTP (--no-https)", 1.15), ("default", "default listeners (mTLS too), existing certs", 1.3)):
            ours = statistics.median(times[kind])
            self.rows.append(Row(f"start to first accepted connection, {label}", f"{ours * 1000:.0f} ms",
                                 f"{klein * 1000:.0f} ms bare Klein", ours / klein, f"<= {goal} x", ours / klein <= goal))

    def rss(self) -> None:
        """Resident memory of twist mockllm with its default listeners, idle and after 100 concurrent requests."""
        klein = self.server("klein")
        server, _ = self.default_listeners()
        try:
            time.sleep(1)
            idle, klein_idle = rss_mib(server.proc.pid), rss_mib(klein.proc.pid)
            asyncio.run(concurrent_requests(server.port, 100))
            loaded = rss_mib(server.proc.pid)
        finally:
            server.stop()
            klein.stop()
        self.rows += [
            Row("RSS idle, default listeners", f"{idle:.1f} MiB", f"{klein_idle:.1f} MiB bare Klein", idle / klein_idle,
                "<= 45 MiB", idle <= 45),
            Row("RSS after 100 concurrent requests, default listeners", f"{loaded:.1f} MiB", "", None,
                "<= 50 MiB", loaded <= 50),
        ]

    def soak(self) -> None:
        """The soak run (bench/soak.py) as rows."""
        s = self.sizes
        found = soak(s.soak_requests, s.soak_connections, server_cpu=SERVER_CPU)
        name = f"soak, {found.requests} mixed requests ({', '.join(found.kinds)}) at {s.soak_connections} connections"
        exact = not found.journal_mismatches and found.log_mismatch is None
        growth = found.rss_last / found.rss_first
        self.rows += [
            Row(f"{name}: unexpected answers", str(found.tally.unexpected), "; ".join(found.tally.examples), None, "0",
                found.tally.unexpected == 0),
            Row(f"{name}: journal and request-log counts", "exact" if exact else "; ".join(
                [*found.journal_mismatches, found.log_mismatch or ""]), "", None, "exact", exact),
            Row(f"{name}: RSS after all / after the first 10 %", f"{found.rss_last:.1f} MiB", f"{found.rss_first:.1f} MiB",
                growth, "<= 1.1 x", growth <= 1.1),
        ]

    def measure(self, group: str) -> None:
        """Run one group of rows; a group that fails becomes one failed row saying why."""
        method: Callable[[], None] = getattr(self, group)
        try:
            method()
        except Exception as error:  # noqa: BLE001 - the table reports it and the run goes on
            self.rows.append(Row(f"{group}: {method.__doc__.splitlines()[0]}", f"error: {type(error).__name__}: {error}"[:300],
                                 "", None, "", False))


async def concurrent_requests(port: int, count: int) -> None:
    """``count`` chat completions at once, each on its own connection, every one answered 200."""
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        answer = await reader.read()
        writer.close()
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(answer[:80])

    await asyncio.gather(*(one() for _ in range(count)))


def machine() -> dict[str, object]:
    """What the figures were measured on and with."""
    import klein
    import twisted

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "klein": klein.__version__,
        "commit": git("rev-parse", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }


def markdown(rows: list[Row], about: dict[str, object]) -> str:
    """The table and what it was measured on, as Markdown."""
    header = ["figure", "ours", "baseline", "ratio", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    facts = ", ".join(f"{key} {value}" for key, value in about.items())
    met = sum(row.met is True for row in rows)
    return "\n".join([*lines, "", f"{met} of {len(rows)} rows meet their target. Measured with {facts}.", ""])


def pin_load_generators() -> None:
    """Run this process and what it starts (wrk, the client processes) on the last CPU, away from the servers."""
    cpus = os.cpu_count() or 1
    if cpus > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpus - 1})


def raise_file_limit() -> None:
    """As many open files as allowed, for this process and the servers it starts (10,000 streams)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def settle() -> None:
    """Before each group: write what the groups before it left in the page cache (the servers' console
    lines, some megabytes) out to disk, so that the kernel's write-back does not land in this group's
    measurement, and give the machine a second."""
    os.sync()
    time.sleep(1)


def main(argv: list[str] | None = None) -> list[Row]:
    """Parse the options, measure the groups asked for, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, default="quick", help="sizes: smoke (seconds, for the test), quick, full (the issue's)")
    parser.add_argument("--skip", default="", help=f"comma-separated groups to leave out: {','.join(GROUPS)}")
    parser.add_argument("--only", default="", help="comma-separated groups to run (default: all)")
    parser.add_argument("--out", help="write OUT.md and OUT.json (default bench/results/run-<UTC time>)")
    args = parser.parse_args(argv)
    groups = [g for g in (args.only.split(",") if args.only else GROUPS) if g and g not in args.skip.split(",")]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))} (known: {', '.join(GROUPS)})")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime()))
    pin_load_generators()
    raise_file_limit()
    about = dict(machine(), mode=args.mode, groups=",".join(groups))
    with tempfile.TemporaryDirectory(prefix="mockllm-bench-") as scratch:
        run = Run(MODES[args.mode], scratch)
        for group in groups:
            settle()
            began = time.perf_counter()
            run.measure(group)
            print(f"measured {group} in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    text = markdown(run.rows, about)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(text)
    with open(out + ".json", "w") as f:
        json.dump({"machine": about, "sizes": asdict(MODES[args.mode]), "rows": [asdict(r) for r in run.rows]}, f, indent=2)
    print(f"written: {out}.md, {out}.json", file=sys.stderr)
    return run.rows


if __name__ == "__main__":
    main()
