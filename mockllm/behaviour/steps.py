"""
The vocabulary of answer scripts: what the executor can be told to do, one step at a time.

The engine (:mod:`.engine`) writes a script as an iterator of these steps; the executor
(:mod:`.executor`) runs it on the injected clock.  A dialect contributes :class:`Frame`
objects (one stream event each), which the engine paces into :class:`Event` and
:class:`Wait` steps.  Each fault is a place in a script: before :class:`Head` (nothing
sent), after it, after event N, or mid-body.
"""

from __future__ import annotations

from http import HTTPStatus

from mockllm.frozen import Frozen, frozen

#: The outcome of an answer a fault cut short (``Finish(CUT)``).
CUT = "cut-by-fault"
#: The outcome of an answer that stalled until its hold ran out (``Close(STALLED)``).
STALLED = "stalled"

#: ``(name, value)`` byte pairs.
HeaderPairs = tuple[tuple[bytes, bytes], ...]


@frozen
class Frame(Frozen):
    """One event of a stream, as its dialect renders it."""

    data: bytes
    #: A lead frame (chat's role event) goes out at once; the first frame after the lead waits
    #: the time to first token, each later one the inter-token pause.
    lead: bool = False


@frozen
class Head(Frozen):
    """Set the status and headers (they go out with the first byte written)."""

    status: int
    headers: HeaderPairs


@frozen
class Write(Frozen):
    """Write body bytes."""

    data: bytes


@frozen
class Event(Frozen):
    """Write one stream event (counted in the exchange's ``events_sent``)."""

    data: bytes
    #: The first event carrying content: its time is the exchange's time to first token.
    first_token: bool = False
    #: Counted in ``events_sent`` (``False`` for the later pieces of a dripped event).
    counted: bool = True


@frozen
class Wait(Frozen):
    """Write nothing for ``seconds`` (on the injected clock)."""

    seconds: float


@frozen
class Count(Frozen):
    """Record the answer's completion tokens (nothing is written)."""

    completion_tokens: int


@frozen
class Finish(Frozen):
    """End the answer normally; ``outcome`` overrides the exchange's (``cut-by-fault``)."""

    outcome: str | None = None


@frozen
class Close(Frozen):
    """Close the connection cleanly (FIN) where the script stands; the answer ends there."""

    outcome: str = "closed"


@frozen
class Abort(Frozen):
    """Reset the connection (RST: ``SO_LINGER`` 0, then abort) where the script stands."""

    outcome: str = "reset"


Step = Head | Write | Event | Wait | Count | Finish | Close | Abort


#: The last step of an answer that ends normally.
FINISH = Finish()

_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def reason_phrase(status: int) -> bytes:
    """The reason phrase for ``status`` (Twisted lacks some, such as 429's)."""
    return _PHRASES.get(status, b"Error")
