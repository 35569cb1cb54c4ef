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

    name = "status"


@dataclass(frozen=True, slots=True)
class TimeoutFault:
    """Send nothing for ``hold`` seconds, then answer 504."""

    hold: float

    name = "timeout"


@dataclass(frozen=True, slots=True)
class ChunkFault:
    """While streaming, make event ``chunk`` (1-based) malformed and end the stream there."""

    chunk: int

    name = "fail_chunk"


@dataclass(frozen=True, slots=True)
class NoFault:
    """An explicit "no fault": a request's ``fail=none`` beats a scenario's fault."""

    name = "none"


NO_FAULT = NoFault()
Fault = StatusFault | TimeoutFault | ChunkFault | NoFault


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

    @property
    def fault_name(self) -> str | None:
        """A short name for the injected fault, or ``None`` when there is none."""
        return None if self.fault is NO_FAULT else self.fault.name


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
