"""
The server's load as a load-aware latency sees it: how many streams are open now.

:class:`OpenStreams` is one counter per app, kept by the engine: :meth:`OpenStreams.counted`
wraps each stream's script, counting the stream from its first step until its last (a
``Finish``, ``Close`` or ``Abort``), or until the script is closed unfinished (a client that
left: the executor closes its script then).  A latency with ``load_ms_per_stream`` reads
:meth:`OpenStreams.others` at each pause.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from mockllm.behaviour.steps import Abort, Close, Finish, Step

#: The steps that end an answer.
_ENDS = (Finish, Close, Abort)


class OpenStreams:
    """How many streams are open now."""

    def __init__(self) -> None:
        self._open = 0

    @property
    def open(self) -> int:
        """The streams open now."""
        return self._open

    def others(self) -> int:
        """The streams open besides the one asking (the count a stream's own pauses grow with)."""
        return max(self._open - 1, 0)

    def counted(self, steps: Iterable[Step]) -> Iterator[Step]:
        """``steps``, with the stream they make counted as open from the first step to the last."""
        self._open += 1
        ended = False
        try:
            for step in steps:
                if not ended and isinstance(step, _ENDS):
                    ended = True
                    self._open -= 1
                yield step
        finally:
            if not ended:
                self._open -= 1
