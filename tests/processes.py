"""
Running the real ``twist mockllm`` / ``twistd -n mockllm`` as a child process
from a trial test, without blocking the reactor.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

ROOT = Path(__file__).resolve().parent.parent
_ANNOUNCED = re.compile(rb"mockllm: (HTTPS?) on ((?:https?://|unix:)[^ \"]+)")


class ServerProcess(ProcessProtocol):
    """A child server: collects its output, fires :attr:`ready` with the first URL it announces."""

    def __init__(self) -> None:
        self.output = b""
        self.urls: dict[str, str] = {}
        self.ready: Deferred[str] = Deferred()
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """Collect stdout; notice announcements."""
        self.output += data
        for kind, url in _ANNOUNCED.findall(self.output):
            self.urls.setdefault(kind.decode(), url.decode())
        if self.urls and not self.ready.called:
            self.ready.callback(next(iter(self.urls.values())))

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        """Fire :attr:`ended` with the exit code, or minus the signal that ended it."""
        code = reason.value.exitCode
        if code is None:
            code = -(reason.value.signal or 0)
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"server exited {code}: {self.output.decode(errors='replace')}"))
            self.ready.addErrback(lambda _: None)  # a test awaiting only `ended` saw the exit itself
        self.ended.callback(code)

    def stop(self) -> Deferred[int]:
        """SIGTERM the server if it still runs; fires as :attr:`ended` does.

        The server drains its connections (``--shutdown-grace-s``) and exits 0
        (``mockllm.http.drain.TermStops``) after "Main loop terminated."
        """
        if not self.ended.called:
            self.transport.signalProcess("TERM")
        return self.ended


def spawn(testcase, args: list[str], cwd: str, command: str = "twist", twist_args: list[str] = ()) -> ServerProcess:
    """Start ``twist`` (or ``twistd -n``, or a daemonizing ``twistd``) ``mockllm <args>`` in ``cwd``.

    ``twist_args`` go to ``twist`` itself, before ``mockllm``.
    The child is stopped in cleanup (a daemonizing launcher has exited by then).
    """
    protocol = ServerProcess()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    twistd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    if command == "twist":
        argv = [sys.executable, "-m", "twisted", *twist_args, "mockllm", *args]
    elif command == "twistd":
        argv = [*twistd, "-n", "--pidfile=", "mockllm", *args]
    else:  # "twistd-daemon": daemonize with the usual twistd.pid and twistd.log in cwd
        argv = [*twistd, "mockllm", *args]
    reactor.spawnProcess(protocol, sys.executable, argv, env=env, path=cwd)
    testcase.addCleanup(protocol.stop)
    return protocol
