"""
The ``twist mockllm`` entry point: the plugin, option checking, the service
tree, and what happens when a port cannot be bound.
"""

from __future__ import annotations

import gc
import os
import socket

import twisted

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet import reactor
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

import mockllm
from mockllm import tap
from mockllm.server import COLLECTOR_THRESHOLDS
from mockllm.http.listen import ListenerService
from tests.processes import spawn
from tests.support import treq_client


def parse(*args: str) -> tap.Options:
    """Parse ``args`` as ``twist mockllm`` would."""
    options = tap.Options()
    options.parseOptions(list(args))
    return options


class PluginTests(unittest.TestCase):
    """The Twisted plugin."""

    def test_discovered(self) -> None:
        """``mockllm`` is an IServiceMaker plugin pointing at mockllm.tap."""
        self.addCleanup(gc.enable)
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("mockllm", makers)
        self.assertIsInstance(makers["mockllm"].options(), tap.Options)

    def test_start_runs_with_the_collector_paused(self) -> None:
        """Choosing ``mockllm`` pauses the garbage collector for the start; the started server turns it on,
        and stopping gives it back as it found it."""
        self.addCleanup(gc.enable)
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        options = makers["mockllm"].options()
        self.assertFalse(gc.isenabled())
        options.parseOptions(["--no-https", "--http-port", "0"])
        service = makers["mockllm"].makeService(options)
        service.startService()
        self.assertTrue(gc.isenabled())
        done = service.stopService()
        self.assertFalse(gc.isenabled())
        return done


class DistributionTests(unittest.TestCase):
    """What the package index knows it as."""

    def test_distribution_name(self) -> None:
        """The distribution is ``mockllm-twisted`` (``mockllm`` is another project's), at mockllm's version."""
        from importlib.metadata import version

        self.assertEqual(version("mockllm-twisted"), mockllm.__version__)


class OptionsTests(unittest.TestCase):
    """Bad values end in a one-line UsageError."""

    def test_defaults(self) -> None:
        """Plain HTTP on 127.0.0.1:8001 with a large backlog by default."""
        config = tap.config_from_options(parse("--no-https"))
        self.assertEqual((config.server.host, config.server.http_port), ("127.0.0.1", 8001))
        self.assertGreaterEqual(config.server.backlog, 512)

    def test_bad_values(self) -> None:
        """Ports, backlogs and timings are checked before anything starts."""
        for args in (
            ["--http-port", "http"],
            ["--http-port", "70000"],
            ["--backlog", "0"],
            ["--stream-interval-ms", "-1"],
            ["--timeout-ms", "3600001"],
            ["--max-delay-ms", "9" * 400],
            ["--models", ","],
            ["--no-http", "--no-https"],
        ):
            with self.assertRaises(usage.UsageError, msg=args) as caught:
                parse(*args)
            self.assertNotIn("\n", str(caught.exception))

    def test_overrides(self) -> None:
        """Options reach the configuration."""
        config = tap.config_from_options(
            parse("--no-https", "--http-port", "0", "--models", "a,b", "--timeout-ms", "5", "--backlog", "4096")
        )
        self.assertEqual(config.server.http_port, 0)
        self.assertEqual(config.models.available, ("a", "b"))
        self.assertEqual(config.responses.timeout_ms, 5)
        self.assertEqual(config.server.backlog, 4096)


class ServiceTests(unittest.TestCase):
    """``makeService``."""

    def test_multiservice_of_listeners(self) -> None:
        """The service is a MultiService whose listener serves HTTP on the chosen port."""
        service = tap.makeService(parse("--no-https", "--http-port", "0"))
        self.assertIsInstance(service, MultiService)
        listeners = [s for s in service if isinstance(s, ListenerService)]
        self.assertEqual(len(listeners), 1)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertNotEqual(listeners[0].port.getHost().port, 0)

    def test_collector_tuned_while_running(self) -> None:
        """A started server has frozen what start-up made and made full collections rarer; stopped, it gives both back."""
        before = gc.get_threshold()
        service = tap.makeService(parse("--no-https", "--http-port", "0"))
        service.startService()
        self.assertGreater(gc.get_freeze_count(), 0)
        self.assertEqual(gc.get_threshold(), COLLECTOR_THRESHOLDS)
        done = service.stopService()
        self.assertEqual(gc.get_freeze_count(), 0)
        self.assertEqual(gc.get_threshold(), before)
        return done

    async def test_serves(self) -> None:
        """A started service answers /health over a socket."""
        service = tap.makeService(parse("--no-https", "--http-port", "0"))
        service.startService()
        self.addCleanup(service.stopService)
        port = next(s for s in service if isinstance(s, ListenerService)).port.getHost().port
        response = await treq_client(self).get(f"http://127.0.0.1:{port}/health")
        self.assertEqual(await response.json(), {"status": "healthy"})

    def test_bind_failure_is_clear(self) -> None:
        """A busy port stops the start with SystemExit naming the listener and the reason."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(parse("--no-https", "--http-port", str(port)))
        self.assertIn(f"cannot listen for HTTP on 127.0.0.1:{port}", str(caught.exception.code))
        service = tap.makeService(parse("--no-https", "--listen", f"tcp:{port}:interface=127.0.0.1"))
        with self.assertRaises(SystemExit) as caught:
            service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertIn(f"cannot listen for tcp:{port}:interface=127.0.0.1", str(caught.exception.code))


class ProcessTests(unittest.TestCase):
    """The real command, as a child process."""

    timeout = 60

    async def test_twist_serves_and_stops(self) -> None:
        """``twist mockllm`` announces a curl command, serves, and shuts down cleanly on SIGTERM."""
        server = spawn(self, ["--no-https", "--http-port", "0"], self.mktemp_dir())
        url = await server.ready
        response = await treq_client(self).get(url + "/v1/models")
        self.assertEqual(response.code, 200)
        await response.content()
        self.assertIn(b"try: curl", server.output)
        self.assertIn(await server.stop(), (0, -15))
        self.assertIn(b"Main loop terminated.", server.output)

    async def test_shipped_default_toml_starts(self) -> None:
        """``--config`` with the shipped default.toml starts from an empty directory (dev PKI made)."""
        import os
        from importlib import resources

        from twisted.internet.task import deferLater

        example = str(resources.files("mockllm") / "examples" / "default.toml")
        cwd = self.mktemp_dir()
        server = spawn(self, ["--config", example, "--http-port", "0", "--https-port", "0"], cwd)
        await server.ready
        for _ in range(100):
            if b"HTTPS (mTLS) on" in server.output:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertIn(b"HTTPS (mTLS) on", server.output)
        self.assertTrue(os.path.exists(os.path.join(cwd, "certs", "ca.pem")))

    async def test_twistd_nodaemon(self) -> None:
        """``twistd -n mockllm`` (the long-running dev daemon) serves the same."""
        server = spawn(self, ["--no-https", "--http-port", "0"], self.mktemp_dir(), command="twistd")
        url = await server.ready
        response = await treq_client(self).get(url + "/health")
        self.assertEqual(await response.json(), {"status": "healthy"})

    async def test_twistd_daemonizes(self) -> None:
        """``twistd mockllm`` daemonizes: its pidfile names a live server, its logfile has the curl line."""
        import os
        import re
        import signal

        from twisted.internet.task import deferLater

        cwd = self.mktemp_dir()
        pidfile, logfile = os.path.join(cwd, "twistd.pid"), os.path.join(cwd, "twistd.log")
        launcher = spawn(self, ["--no-https", "--http-port", "0"], cwd, command="twistd-daemon")
        self.assertEqual(await launcher.ended, 0)
        for _ in range(100):
            if os.path.exists(logfile) and b"try: curl" in open(logfile, "rb").read():
                break
            await deferLater(reactor, 0.1, lambda: None)
        pid = int(open(pidfile).read())
        self.addCleanup(_kill, pid, signal.SIGTERM)
        url = re.search(r"HTTP on (http://\S+)", open(logfile).read()).group(1)
        response = await treq_client(self).get(url + "/health")
        self.assertEqual(await response.json(), {"status": "healthy"})

    async def test_busy_port_exits_nonzero(self) -> None:
        """A busy port: one clear line and a non-zero exit, no half-running server."""
        busy = reactor.listenTCP(0, _NullFactory(), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        port = busy.getHost().port
        server = spawn(self, ["--no-https", "--http-port", str(port)], self.mktemp_dir())
        code = await server.ended
        self.assertNotEqual(code, 0)
        self.assertIn(f"cannot listen for HTTP on 127.0.0.1:{port}".encode(), server.output)
        self.assertNotIn(b"Traceback", server.output)

    async def test_busy_port_daemon_reports(self) -> None:
        """A daemonizing ``twistd`` with a busy port: the launcher says why and exits non-zero (no hang)."""
        busy = reactor.listenTCP(0, _NullFactory(), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        port = busy.getHost().port
        launcher = spawn(self, ["--no-https", "--http-port", str(port)], self.mktemp_dir(), command="twistd-daemon")
        code = await launcher.ended
        self.assertEqual(code, 1)
        self.assertIn(b"cannot listen for HTTP on 127.0.0.1", launcher.output)
        self.assertNotIn(b"An error has occurred", launcher.output)  # said before daemonizing, whole

    async def test_bad_option_exits_with_usage(self) -> None:
        """A bad option value: the error naming the option, one hint line, exit 64; no usage dump, no traceback."""
        server = spawn(self, ["--http-port", "nope"], self.mktemp_dir())
        code = await server.ended
        self.assertEqual(code, 64)
        self.assertEqual(server.output.decode().splitlines(), [
            "mockllm: error: --http-port: a port must be a number from 0 to 65535, not 'nope'",
            "see: twist mockllm --help",
        ])

    async def test_bad_config_value_exits_with_one_line(self) -> None:
        """A bad --config value: the file, the key and what was expected on one line, then the hint."""
        cwd = self.mktemp_dir()
        with open(os.path.join(cwd, "bad.toml"), "w") as f:
            f.write("[server]\nbacklog = true\n")
        server = spawn(self, ["--config", "bad.toml"], cwd)
        self.assertEqual(await server.ended, 64)
        self.assertEqual(server.output.decode().splitlines(), [
            "mockllm: error: bad.toml: [server] backlog: expected a whole number >= 1, got true",
            "see: twist mockllm --help",
        ])

    async def test_version(self) -> None:
        """``--version`` names mockllm's version and Twisted's."""
        server = spawn(self, ["--version"], self.mktemp_dir())
        self.assertEqual(await server.ended, 0)
        self.assertEqual(server.output.decode().strip(), f"mockllm {mockllm.__version__} (Twisted {twisted.__version__})")

    async def test_banner(self) -> None:
        """Start-up says the configuration, scenario, seed, models and request log, one line each."""
        server = spawn(self, ["--no-https", "--http-port", "0", "--seed", "7", "--models", "my-model"], self.mktemp_dir())
        await server.ready
        await server.stop()
        text = server.output.decode()
        for line in ("configuration embedded defaults", "scenario default", "seed 7", "models my-model",
                     "request log off"):
            self.assertIn(f"mockllm{'' if line.startswith('configuration') else ':'} ", text)
            self.assertIn(line, text)
        self.assertIn('"model": "my-model"', text)  # the curl hint uses a served model

    async def test_help_mentions_mtls(self) -> None:
        """``--help`` tells of both default listeners and of --listen."""
        server = spawn(self, ["--help"], self.mktemp_dir())
        await server.ended
        text = " ".join(server.output.decode().split())
        self.assertIn("mTLS", text)
        self.assertIn("--listen", text)

    def mktemp_dir(self) -> str:
        """A fresh working directory for the child."""
        import os

        path = self.mktemp()
        os.makedirs(path)
        return path


def _kill(pid: int, signum: int) -> None:
    """Signal ``pid`` if it still exists."""
    import os

    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class _NullFactory:
    """A factory whose connections do nothing (for occupying a port)."""

    def doStart(self) -> None:
        """Nothing to start."""

    def doStop(self) -> None:
        """Nothing to stop."""

    def buildProtocol(self, addr):
        """Refuse every connection."""
        return None
