"""
Reloading the TLS material: on SIGHUP (:class:`TLSReloadService`) and for
``POST /__admin/reload-tls`` (:func:`reload_response`), for every mTLS listener at once.
"""

from __future__ import annotations

import signal
from typing import Optional, Protocol, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from mockllm.tls.interfaces import TLSConfigError

log = Logger()


class Reloadable(Protocol):
    """TLS material that can be re-read (a :class:`~mockllm.tls.server.ReloadableServerTLS`)."""

    def reload(self) -> Deferred:
        """Re-read; fire with the warnings, or fail with :class:`TLSConfigError`."""


class ReloadGroup:
    """Every mTLS listener's TLS, reloaded together."""

    def __init__(self, members: Sequence[Reloadable]) -> None:
        self.members = tuple(members)

    def reload(self) -> Deferred:
        """Reload each; fire with all their warnings, or fail with the first broken file's error."""
        d = gatherResults([member.reload() for member in self.members], consumeErrors=True)
        d.addCallback(lambda results: [warning for warnings in results for warning in warnings])
        return d.addErrback(lambda failure: failure.value.subFailure)


class TLSReloadService(Service):
    """
    Reloads the server's TLS material on SIGHUP while running (the previous
    handler is restored on stop).
    """

    def __init__(self, server_tls: Reloadable, reactor=None) -> None:
        """
        Reload C{server_tls}; C{reactor} schedules the reload (default: the global one).
        """
        self.server_tls = server_tls
        self._reactor = reactor
        self._previous = None

    def startService(self) -> None:
        """
        Install the SIGHUP handler (where there is SIGHUP and this is the main thread).
        """
        super().startService()
        if hasattr(signal, "SIGHUP"):
            try:
                self._previous = signal.signal(signal.SIGHUP, self._on_signal)
            except ValueError:  # not the main thread
                self._previous = None

    def stopService(self) -> None:
        """
        Put the previous SIGHUP handler back.
        """
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        reactor.callFromThread(self.reload)

    def reload(self) -> Deferred:
        """
        Reload now; a broken file is logged (by L{ReloadableServerTLS.reload}), not raised.
        """
        def logged_already(failure) -> None:
            failure.trap(TLSConfigError)

        return self.server_tls.reload().addErrback(logged_already)


def reload_response(server_tls: Optional[Reloadable]) -> Deferred:
    """
    What C{POST /__admin/reload-tls} answers: fires with C{(status, body)}
    where body is a JSON-ready dict: 200 C{{"reloaded": true, "warnings":
    [...]}}; 500 (the error names the broken file; the old material stays in
    use) or 404 without an HTTPS listener, each with an OpenAI-shaped
    C{"error"} and C{"reloaded": false}.
    Cancelling it (Klein does when the client disconnects) does not stop the
    reload: see L{detached}.
    """
    if server_tls is None:
        return succeed((404, _failed("This server has no HTTPS listener.", "invalid_request_error", "no_https_listener")))

    def failed(failure):
        failure.trap(TLSConfigError)
        return 500, _failed(failure.getErrorMessage(), "server_error", "tls_reload_failed")

    d = server_tls.reload()
    d.addCallbacks(lambda warnings: (200, {"reloaded": True, "warnings": warnings}), failed)
    return detached(d)


def _failed(message: str, kind: str, code: str) -> dict:
    """A failed reload's body: the OpenAI-shaped ``error`` every other error has, and ``reloaded: false``."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}, "reloaded": False}


def detached(work: Deferred) -> Deferred:
    """
    A new Deferred that fires with C{work}'s result, but whose cancellation
    leaves C{work} running.

    Klein cancels a route's Deferred when the client disconnects; a reload
    must still finish (and log) then, not be dropped half-way.  Once the
    returned Deferred has been cancelled, C{work}'s result is dropped: a
    success quietly, a failure (other than the L{TLSConfigError} that
    L{ReloadableServerTLS.reload} has already logged) logged here.
    """
    waiting = Deferred()

    def forward(result):
        if waiting.called:  # cancelled: nobody waits for the result any more
            if isinstance(result, Failure):
                log.failure("TLS reload failed after its caller went away", result)
        elif isinstance(result, Failure):
            waiting.errback(result)
        else:
            waiting.callback(result)

    work.addBoth(forward)
    return waiting

