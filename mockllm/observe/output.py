"""
What ``twist mockllm`` prints: one readable line per event wherever stdout goes, and none of
Twisted's per-port noise.

``twist`` writes its JSON event format when stdout is not a terminal (CI, Docker, ``| tee``);
unless ``--log-format`` is given to ``twist``, mockllm asks it for its text format instead.
Either way the lines Twisted logs for every port (``MockSite (ConnectionLimit) starting on
8001``, ``(TLS Port 8443 Closed)``) are dropped: mockllm announces its listeners itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, TextIO

from twisted.logger import FilteringLogObserver, ILogObserver, PredicateResult, textFileLogObserver

#: Twisted's lines for each listening port, which mockllm's own announcements replace.
_PORT_NOISE = re.compile(r"^(?:MockSite \(ConnectionLimit\)(?: \(TLS\))? starting on |\((?:TCP|TLS|UNIX) Port .* Closed\)$)")

ObserverFactory = Callable[[TextIO], ILogObserver]


def quiet(event: dict[str, Any]) -> PredicateResult:
    """Drop Twisted's per-port start and stop lines; let everything else through."""
    text = event.get("log_text")
    if isinstance(text, str) and _PORT_NOISE.match(text):
        return PredicateResult.no
    return PredicateResult.maybe


def quieted(factory: ObserverFactory) -> ObserverFactory:
    """``factory``'s observers, with :func:`quiet` in front."""

    def make(output: TextIO) -> ILogObserver:
        return FilteringLogObserver(factory(output), [quiet])

    return make


def chose_log_format(argv: Sequence[str]) -> bool:
    """Whether the ``twist`` command line (``argv``) chose a log format itself."""
    return any(arg == "--log-format" or arg.startswith("--log-format=") for arg in argv)


def adjust_twist_output(twist_options: dict, argv: Sequence[str]) -> None:
    """Make ``twist``'s output readable (unless its ``--log-format`` chose) and quiet."""
    factory = twist_options["fileLogObserverFactory"]
    if not chose_log_format(argv):
        factory = textFileLogObserver
        twist_options["logFormat"] = "text"
    twist_options["fileLogObserverFactory"] = quieted(factory)
