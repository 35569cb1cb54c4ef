"""
What ``twist mockllm`` prints: one readable line per event wherever stdout goes, and none of
Twisted's per-port noise.

``twist`` writes its JSON event format when stdout is not a terminal (CI, Docker, ``| tee``);
unless ``--log-format`` is given to ``twist``, mockllm asks it for its text format instead.
Either way the lines Twisted logs for every port (``MockSite (ConnectionLimit) starting on
8001``, ``(TLS Port 8443 Closed)``) are dropped: mockllm announces its listeners itself.

The text format is :func:`text_lines`: Twisted's own text observer, except that the console
line of each request (an event of :data:`~mockllm.observe.console.NAMESPACE` carrying its
rendered ``line``) is written as Twisted would write it without going through Twisted's
formatter: the time stamp is made once a second, the rest is the line as it is.  It was a
seventh of each request's cost.  It drops the port noise itself (:func:`quiet` on every other
event), so a console line passes one filter fewer; the JSON format gets :func:`quieted`.  Under
``twist`` those lines are flushed once per turn of the reactor, not once each, and written then
with one ``write``: with ``PYTHONUNBUFFERED=1`` (set in many container images) every write to
stdout is a system call, and one per request was a twentieth of its cost.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, TextIO

from twisted.internet.interfaces import IDelayedCall, IReactorCore, IReactorTime
from twisted.logger import FilteringLogObserver, ILogObserver, PredicateResult, formatTime, textFileLogObserver
from zope.interface import implementer

from mockllm.observe.console import NAMESPACE

#: Twisted's lines for each listening port, which mockllm's own announcements replace.
_PORT_NOISE = re.compile(r"^(?:MockSite \(ConnectionLimit\)(?: \(TLS\))? starting on |\((?:TCP|TLS|UNIX) Port .* Closed\)$)")

ObserverFactory = Callable[[TextIO], ILogObserver]


def quiet(event: dict[str, Any]) -> PredicateResult:
    """Drop Twisted's per-port start and stop lines; let everything else through."""
    text = event.get("log_text")
    if isinstance(text, str) and _PORT_NOISE.match(text):
        return PredicateResult.no
    return PredicateResult.maybe


@implementer(ILogObserver)
class TextLines:
    """``textFileLogObserver(output)``'s lines, the console's written without Twisted's formatter,
    the port noise (:func:`quiet`) dropped.

    With a ``clock`` (``twist``'s reactor), console lines are kept until the end of its turn and
    then written and flushed together: a server answering many requests per turn writes them with
    one system call, however ``output`` buffers (an unbuffered stdout writes each ``write`` at
    once).  Any other event is written (and flushed) at once, after what is pending before it; what
    is pending when a reactor ``clock`` shuts down is written then.
    """

    def __init__(self, output: TextIO, clock: IReactorTime | None = None) -> None:
        self._output = output
        self._others = textFileLogObserver(output)
        self._clock = clock
        self._pending: list[str] = []
        self._flush: IDelayedCall | None = None
        self._second: int | None = None
        self._stamp = ""
        if IReactorCore.providedBy(clock):
            clock.addSystemEventTrigger("after", "shutdown", self._flushed)

    def __call__(self, event: dict[str, Any]) -> None:
        """Write ``event`` as one line of Twisted's text format."""
        line = event.get("line")
        if (
            event.get("log_namespace") != NAMESPACE
            or not isinstance(line, str)
            or "\n" in line
            or "log_system" in event
            or "log_failure" in event
        ):
            if quiet(event) is not PredicateResult.no:
                self._write_pending()
                self._others(event)
            return
        text = f"{self._time(event['log_time'])} [{NAMESPACE}#{event['log_level'].name}] {line}\n"
        if self._clock is None:
            self._output.write(text)
            self._output.flush()
            return
        self._pending.append(text)
        if self._flush is None:
            self._flush = self._clock.callLater(0, self._flushed)

    def _write_pending(self) -> None:
        """Write the console lines kept so far, in one ``write``."""
        if self._pending:
            self._output.write("".join(self._pending))
            self._pending.clear()

    def _flushed(self) -> None:
        """The end of the turn: this turn's lines go out together."""
        self._flush = None
        self._write_pending()
        self._output.flush()

    def _time(self, when: float) -> str:
        """Twisted's RFC 3339 time stamp of ``when`` (to the second, so made once a second)."""
        second = int(when)
        if second != self._second:
            self._second, self._stamp = second, formatTime(second)
        return self._stamp


def text_lines(output: TextIO, clock: IReactorTime | None = None) -> ILogObserver:
    """The observer of ``twist``'s text format (:class:`TextLines`); ``clock``: flush once per turn of it."""
    return TextLines(output, clock)


def quieted(factory: ObserverFactory) -> ObserverFactory:
    """``factory``'s observers, with :func:`quiet` in front."""

    def make(output: TextIO) -> ILogObserver:
        return FilteringLogObserver(factory(output), [quiet])

    return make


def chose_log_format(argv: Sequence[str]) -> bool:
    """Whether the ``twist`` command line (``argv``) chose a log format itself."""
    return any(arg == "--log-format" or arg.startswith("--log-format=") for arg in argv)


def adjust_twist_output(twist_options: dict, argv: Sequence[str]) -> None:
    """Make ``twist``'s output readable (unless its ``--log-format`` chose) and quiet; console
    lines flushed once per turn of ``twist``'s reactor."""
    factory = twist_options["fileLogObserverFactory"]
    if not chose_log_format(argv):

        def text(output: TextIO) -> ILogObserver:
            # ``twist`` installs its reactor after parsing the options, before it starts logging.
            return text_lines(output, twist_options.get("reactor"))

        twist_options["logFormat"] = "text"
        twist_options["fileLogObserverFactory"] = text
    else:
        twist_options["fileLogObserverFactory"] = quieted(factory)
