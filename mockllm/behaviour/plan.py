"""
What the server will do with one request: a :class:`Plan`.

A plan is resolved from layers of :class:`PlanPart`, most specific first:
the request's own controls, then the scenario, then the configuration.  The
first layer with an opinion on a field wins.  Faults, content and timing are
separate values so that new kinds of each are additions, not rewrites; the
engine (:mod:`mockllm.behaviour.engine`) turns a plan into a script of steps.
"""

from __future__ import annotations

import random
from dataclasses import fields
from typing import Any, Mapping

from mockllm.behaviour.reply import Reply
from mockllm.config.model import DEFAULT_FAIL_STATUS, DEFAULT_JITTER, JITTERS
from mockllm.frozen import Frozen, frozen


@frozen
class StatusFault(Frozen):
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


@frozen
class TimeoutFault(Frozen):
    """Send nothing for ``hold`` seconds, then answer 504."""

    hold: float

    name = "timeout"
    at = 0


@frozen
class ChunkFault(Frozen):
    """While streaming, make event ``chunk`` (1-based) malformed and end the stream there."""

    chunk: int

    name = "fail_chunk"

    @property
    def at(self) -> int:
        """The stream event the fault acts at (1-based)."""
        return self.chunk


@frozen
class ErrorEventFault(Frozen):
    """While streaming: events 1 .. ``at``-1, then the dialect's in-band error event for ``status``."""

    at: int
    #: Picks the error's ``type``/``code`` from the status table (``?fail_status=``).
    status: int = DEFAULT_FAIL_STATUS

    name = "error_event"


@frozen
class ResetFault(Frozen):
    """Reset the connection (RST): before any byte (``at`` 0), or in place of stream event ``at``."""

    at: int = 0

    name = "reset"


@frozen
class CloseFault(Frozen):
    """Close the connection cleanly (FIN): before any byte (``at`` 0), or in place of stream event ``at``."""

    at: int = 0

    name = "close"


@frozen
class StallFault(Frozen):
    """Send the status and headers (``at`` 0) or stream events 1 .. ``at``-1, then nothing for
    ``hold`` seconds, then close the connection."""

    hold: float
    at: int = 0

    name = "stall"


@frozen
class MalformedFault(Frozen):
    """A 200 whole answer (even to a stream request) whose JSON body is cut off mid-object."""

    name = "malformed"
    at = 0


@frozen
class NoFault(Frozen):
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


@frozen
class StreamTiming(Frozen):
    """When streamed chunks are sent, in seconds: the latency model of one answer."""

    #: Before the first content chunk (time to first token), after the role chunk.
    first_token: float = 0.0
    #: Between content chunks.
    inter_token: float = 0.02
    #: How much each pause varies: the spread of ``distribution`` as a fraction of the pause
    #: (``uniform``: a factor in ``[1 - jitter, 1 + jitter]``; ``normal``, ``lognormal``: its
    #: standard deviation).
    jitter: float = 0.0
    #: How pauses vary: one of :data:`~mockllm.config.model.JITTERS`.
    distribution: str = DEFAULT_JITTER
    #: Seconds added to each pause for every other stream open at the time (load-aware latency).
    load: float = 0.0
    #: Whether a whole (not streamed) answer also waits the time generating it takes: the time to
    #: first token and an inter-token pause per further token (a latency that was asked for).
    whole_waits: bool = False

    def __post_init__(self) -> None:
        if self.distribution not in JITTERS:
            raise ValueError(f"distribution: expected one of {', '.join(JITTERS)}, got {self.distribution!r}")


@frozen
class TimingPart(Frozen):
    """Part of a :class:`StreamTiming`: ``None`` fields are left to the layers below (``?ttft_ms=``
    alone keeps the scenario's or the model's inter-token pause)."""

    first_token: float | None = None
    inter_token: float | None = None
    jitter: float | None = None
    distribution: str | None = None
    load: float | None = None
    whole_waits: bool | None = None


_TIMING_FIELDS = tuple(f.name for f in fields(StreamTiming))
_DEFAULT_TIMING = StreamTiming()
#: How a latency table's keys (``[models.latency."ID"]``, a scenario's ``latency``) become
#: :class:`StreamTiming` fields: the field and the factor (ms to seconds, percent to a fraction).
_LATENCY_KEYS: Mapping[str, tuple[str, float]] = {
    "ttft_ms": ("first_token", 1e-3),
    "itl_ms": ("inter_token", 1e-3),
    "jitter_pct": ("jitter", 1e-2),
    "load_ms_per_stream": ("load", 1e-3),
}


def latency_timing(table: Mapping[str, Any]) -> TimingPart:
    """The timing a latency table asks for (its ``None`` or absent keys left to the layers below);
    a whole answer then waits too (:attr:`StreamTiming.whole_waits`)."""
    chosen: dict[str, Any] = {"whole_waits": True}
    for key, value in table.items():
        if value is None:
            continue
        if key == "jitter":
            chosen["distribution"] = value
        else:
            name, factor = _LATENCY_KEYS[key]
            chosen[name] = value * factor
    return TimingPart(**chosen)


def merged_timing(*timings: StreamTiming | TimingPart | None) -> StreamTiming:
    """``timings`` (most specific first) as one :class:`StreamTiming`: each field from the first that
    gives it, else its default."""
    chosen: dict[str, Any] = {}
    for timing in timings:
        if timing is None:
            continue
        if isinstance(timing, StreamTiming) and not chosen:
            return timing
        for name in _TIMING_FIELDS:
            if name not in chosen:
                value = getattr(timing, name)
                if value is not None:
                    chosen[name] = value
        if isinstance(timing, StreamTiming):
            break
    return StreamTiming(**chosen) if chosen else _DEFAULT_TIMING


@frozen
class PlanPart(Frozen):
    """One layer's opinion; ``None`` means "no opinion, ask the next layer"."""

    delay: float | None = None
    fault: Fault | None = None
    #: The reply: text (one choice) or a whole :class:`~mockllm.behaviour.reply.Reply`.
    content: str | Reply | None = None
    #: The stream pacing: whole (:class:`StreamTiming`), or some fields of it (:class:`TimingPart`,
    #: the rest from the layers below).
    timing: StreamTiming | TimingPart | None = None
    #: Seeds the request's own draws (reply text, stream jitter) with a generator of their own.
    seed: int | None = None
    #: Without a ``seed``: the generator the request's draws come from, as it arrives (a jittered
    #: stream's pauses from one seeded by it).  The scenario layer gives its per-key generator, so
    #: ``--seed`` reproduces them per client key.
    draws: random.Random | None = None
    #: Write the body (a whole answer, or each stream event) a few bytes at a time, this many
    #: seconds apart (``?drip_ms=``); 0: all at once.
    drip: float | None = None
    #: Make each text choice exactly this many completion tokens (``?reply_tokens=``), unless a stop
    #: sequence or ``max_tokens`` ends it sooner.
    reply_tokens: int | None = None


@frozen
class Plan(Frozen):
    """The resolved plan for one request."""

    delay: float = 0.0
    fault: Fault = NO_FAULT
    #: ``None``: draw a reply from the templates.
    content: str | Reply | None = None
    timing: StreamTiming = StreamTiming()
    #: ``None``: draw from ``draws``.
    seed: int | None = None
    #: ``None`` (and no ``seed``): draw from the app's own generator.
    draws: random.Random | None = None
    drip: float = 0.0
    #: ``None``: the reply is as long as its text.
    reply_tokens: int | None = None

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


_FIELDS = tuple(f.name for f in fields(PlanPart) if f.name != "timing")
#: The layer with no opinion at all, shared (a request without controls, no matching rule):
#: :func:`resolve` passes over it without asking each field.
NO_OPINION = PlanPart()


def resolve(*layers: PlanPart) -> Plan:
    """Merge ``layers`` (most specific first) into a :class:`Plan`; the timing field by field
    (:func:`merged_timing`)."""
    layers = tuple(layer for layer in layers if layer is not NO_OPINION)
    chosen: dict[str, Any] = {}
    for name in _FIELDS:
        for layer in layers:
            value = getattr(layer, name)
            if value is not None:
                chosen[name] = value
                break
    for index, layer in enumerate(layers):
        timing = layer.timing
        if timing is not None:  # most plans: one whole StreamTiming, taken as it is
            whole = isinstance(timing, StreamTiming)
            chosen["timing"] = timing if whole else merged_timing(*(lower.timing for lower in layers[index:]))
            break
    return Plan(**chosen)
