"""
What the server will do with one request: a :class:`Plan`.

A plan is resolved from layers of :class:`PlanPart`, most specific first:
the request's own controls, then the scenario, then the configuration.  The
first layer with an opinion on a field wins.  Faults, content and timing are
separate values so that new kinds of each are additions, not rewrites; the
engine (:mod:`mockllm.behaviour.engine`) turns a plan into a script of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from mockllm.behaviour.reply import Reply
from mockllm.config.model import DEFAULT_FAIL_STATUS


@dataclass(frozen=True, slots=True)
class StatusFault:
    """Answer with an OpenAI-shaped error of this HTTP status instead of a completion."""

    status: int
    #: Overrides the status's usual message.
    message: str | None = None
    #: Extra response headers, e.g. ``retry-after`` for a 429 (they replace the dialect's own).
    headers: tuple[tuple[str, str], ...] = ()
    #: The wait, in seconds, the dialect's retry headers tell (``?retry_after=``); ``None``:
    #: its default (a 429 tells 1 s, other statuses nothing).
    retry_after: float | None = None
    #: ``x-should-retry: true|false`` (``?should_retry=``); ``None``: no such header.
    should_retry: bool | None = None
    #: Which retry headers tell the wait (``?retry_after_format=``): one of
    #: :data:`RETRY_AFTER_FORMATS`; ``None``: both ``retry-after`` and ``retry-after-ms``.
    retry_after_format: str | None = None

    name = "status"
    at = 0


@dataclass(frozen=True, slots=True)
class TimeoutFault:
    """Send nothing for ``hold`` seconds, then answer 504."""

    hold: float

    name = "timeout"
    at = 0


@dataclass(frozen=True, slots=True)
class ChunkFault:
    """While streaming, make event ``chunk`` (1-based) malformed and end the stream there."""

    chunk: int

    name = "fail_chunk"

    @property
    def at(self) -> int:
        """The stream event the fault acts at (1-based)."""
        return self.chunk


@dataclass(frozen=True, slots=True)
class ErrorEventFault:
    """While streaming: events 1 .. ``at``-1, then the dialect's in-band error event for ``status``."""

    at: int
    #: Picks the error's ``type``/``code`` from the status table (``?fail_status=``).
    status: int = DEFAULT_FAIL_STATUS

    name = "error_event"


@dataclass(frozen=True, slots=True)
class ResetFault:
    """Reset the connection (RST): before any byte (``at`` 0), or in place of stream event ``at``."""

    at: int = 0

    name = "reset"


@dataclass(frozen=True, slots=True)
class CloseFault:
    """Close the connection cleanly (FIN): before any byte (``at`` 0), or in place of stream event ``at``."""

    at: int = 0

    name = "close"


@dataclass(frozen=True, slots=True)
class StallFault:
    """Send the status and headers (``at`` 0) or stream events 1 .. ``at``-1, then nothing for
    ``hold`` seconds, then close the connection."""

    hold: float
    at: int = 0

    name = "stall"


@dataclass(frozen=True, slots=True)
class MalformedFault:
    """A 200 whole answer (even to a stream request) whose JSON body is cut off mid-object."""

    name = "malformed"
    at = 0


@dataclass(frozen=True, slots=True)
class NoFault:
    """An explicit "no fault": a request's ``fail=none`` beats a scenario's fault."""

    name = "none"
    at = 0


NO_FAULT = NoFault()
Fault = (
    StatusFault | TimeoutFault | ChunkFault | ErrorEventFault | ResetFault | CloseFault | StallFault | MalformedFault | NoFault
)
#: The ``retry_after_format`` values: ``retry-after`` in whole seconds, ``retry-after-ms``,
#: ``retry-after`` as an HTTP-date, or no retry header at all.
RETRY_AFTER_FORMATS = ("seconds", "ms", "date", "none")


def fitting(fault: Fault, stream: bool) -> Fault:
    """``fault``, or :data:`NO_FAULT` when it acts at a stream event and the answer is not streamed."""
    return NO_FAULT if fault.at and not stream else fault


@dataclass(frozen=True, slots=True)
class StreamTiming:
    """When streamed chunks are sent, in seconds."""

    #: Before the first content chunk (time to first token), after the role chunk.
    first_token: float = 0.0
    #: Between content chunks.
    inter_token: float = 0.02
    #: Each pause is multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]``.
    jitter: float = 0.0


@dataclass(frozen=True, slots=True)
class PlanPart:
    """One layer's opinion; ``None`` means "no opinion, ask the next layer"."""

    delay: float | None = None
    fault: Fault | None = None
    #: The reply: text (one choice) or a whole :class:`~mockllm.behaviour.reply.Reply`.
    content: str | Reply | None = None
    timing: StreamTiming | None = None
    #: Seeds the request's own draws (reply text, stream jitter); the scenario layer sets it from
    #: its per-key generator, so ``--seed`` reproduces them per client key.
    seed: int | None = None
    #: Write the body (a whole answer, or each stream event) a few bytes at a time, this many
    #: seconds apart (``?drip_ms=``); 0: all at once.
    drip: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The resolved plan for one request."""

    delay: float = 0.0
    fault: Fault = NO_FAULT
    #: ``None``: draw a reply from the templates.
    content: str | Reply | None = None
    timing: StreamTiming = StreamTiming()
    #: ``None``: draw from the app's own generator.
    seed: int | None = None
    drip: float = 0.0

    @property
    def fault_name(self) -> str | None:
        """A short name for the injected fault (``+drip`` when the body also drips), or ``None``."""
        names = [self.fault.name] if self.fault is not NO_FAULT else []
        if self.drip > 0:
            names.append("drip")
        return "+".join(names) or None

    @property
    def fault_at(self) -> int | None:
        """The stream event the fault acts at (1-based; 0: before any event), or ``None`` without one."""
        return None if self.fault_name is None else self.fault.at


_FIELDS = tuple(f.name for f in fields(PlanPart))


def resolve(*layers: PlanPart) -> Plan:
    """Merge ``layers`` (most specific first) into a :class:`Plan`."""
    chosen = {}
    for name in _FIELDS:
        for layer in layers:
            value = getattr(layer, name)
            if value is not None:
                chosen[name] = value
                break
    return Plan(**chosen)
