"""
The answer engine: turns a resolved :class:`~mockllm.behaviour.plan.Plan` into a script.

A script is an iterator of steps (:mod:`.steps`), produced lazily: what comes after a wait
(the reply, its id and ``created`` time) is only computed once the wait is over.  The
engine knows no wire format (the request's dialect renders every byte) and no HTTP (the
executor runs the steps).  Where a fault acts is where it sits in the script:

- a status fault: the dialect's error answer, after the plan's delay;
- a timeout: the delay, then the hold, then a 504;
- a reset or a close before any byte: an ``Abort`` (RST) or a ``Close`` (FIN) in place of the answer;
- a stall: the status and headers (a whole answer's with its ``content-length``), then nothing
  for the hold, then a ``Close`` (``stalled``);
- malformed: a 200 whole answer whose JSON body is cut half-way (``cut-by-fault``);
- at stream event N (``fail_chunk=N``): events 1 .. N-1 as usual, then in place of event N the
  dialect's malformed event or its in-band error event (``cut-by-fault``), a close, a reset,
  or a stall (:func:`event_fault`).

A plan's ``drip`` rewrites any script (:func:`dripped`): every body write and stream event goes
out a few bytes at a time, ``drip`` seconds apart.

Pacing of a stream: lead frames (chat's role event) go at once; the first frame after them
waits the time to first token, every later one the inter-token pause, each with the plan's
jitter (:mod:`.latency`) and, under a load-aware latency, longer for each other stream open
(:mod:`.load`).  A whole answer whose timing says so (``whole_waits``: a latency asked for by
``ttft_ms``/``itl_ms`` or a latency table) waits the time generating it takes before its head.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Callable, Iterable, Iterator

from twisted.internet.interfaces import IReactorTime

from mockllm.behaviour.compose import compose
from mockllm.behaviour.errors import APIError
from mockllm.behaviour.latency import generation_time, jittered
from mockllm.behaviour.load import OpenStreams
from mockllm.behaviour.plan import (
    NO_FAULT,
    ChunkFault,
    CloseFault,
    ErrorEventFault,
    Fault,
    MalformedFault,
    Plan,
    ResetFault,
    StallFault,
    StatusFault,
    StreamTiming,
    TimeoutFault,
)
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import (
    CUT,
    FINISH,
    STALLED,
    Abort,
    Close,
    Count,
    Event,
    Finish,
    Head,
    HeaderPairs,
    Step,
    Wait,
    Write,
)
from mockllm.dialects import IDialect

#: How many bytes each write of a dripped body carries.
DRIP_BYTES = 8


class Engine:
    """Writes the script of each answer: the plan's delay, its fault or its reply."""

    def __init__(
        self, clock: IReactorTime, ids: random.Random, rng: random.Random, load: OpenStreams | None = None
    ) -> None:
        """``load``: the open streams a load-aware latency grows with (default: this engine's own count)."""
        self._clock = clock
        #: Answer ids; apart from ``rng`` so that ids never shift seeded replies.
        self._ids = ids
        #: Replies and jitter of plans without a seed of their own.
        self._rng = rng
        #: The streams open now (each stream's script is counted while it runs).
        self.load = load if load is not None else OpenStreams()

    def script(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterable[Step]:
        """The steps answering ``request`` as ``plan`` says (after the plan's delay, if any; dripped if asked)."""
        steps = self._delayed(dialect, request, plan) if plan.delay > 0 else self._answer(dialect, request, plan)
        return dripped(steps, plan.drip) if plan.drip > 0 else steps

    def _delayed(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterator[Step]:
        yield Wait(plan.delay)
        yield from self._answer(dialect, request, plan)

    def _answer(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterable[Step]:
        """The fault's steps, or the reply's: drawn, stamped and rendered now."""
        fault = plan.fault
        if isinstance(fault, StatusFault):
            return error_script(dialect, dialect.fault_error(fault, self._clock.seconds()))
        if isinstance(fault, TimeoutFault):
            return (Wait(fault.hold), *error_script(dialect, dialect.fault_error(StatusFault(504))))
        if isinstance(fault, (ResetFault, CloseFault)) and not fault.at:
            return event_fault(dialect, request, None, fault)
        rng = random.Random(plan.seed) if plan.seed is not None else plan.draws or self._rng
        reply = self.reply(plan, request, rng) if dialect.replies else Reply(())
        stamp = Stamp(dialect.new_id(self._ids), int(self._clock.seconds()))
        count = Count(reply.completion_tokens)
        load = self.load
        if request.stream and not isinstance(fault, MalformedFault):
            pause = paced(plan.timing, own_draws(rng, plan), load.others)
            return load.counted(itertools.chain((count,), stream_script(dialect, request, reply, stamp, pause, fault)))
        whole = whole_script(dialect, dialect.render(request, reply, stamp), fault)
        if plan.timing.whole_waits and dialect.replies:
            return (count, Wait(generation_time(paced(plan.timing, rng, lambda: load.open), reply)), *whole)
        return (count, *whole)

    @staticmethod
    def reply(plan: Plan, request: CompletionRequest, rng: random.Random) -> Reply:
        """The plan's whole :class:`Reply` as it is, else one composed for ``request`` with ``rng``
        (around the plan's fixed text, if any, so ``n``, ``max_tokens`` and ``stop`` still apply)."""
        content = plan.content
        if isinstance(content, Reply):
            return content
        return compose(request, rng, content, plan.reply_tokens)


def own_draws(rng: random.Random, plan: Plan) -> random.Random:
    """The generator of a stream's pauses: ``rng``, or, when ``rng`` is shared (not seeded for this
    request) and the pauses draw jitter as the stream goes, one seeded from it now (so that they do
    not depend on what other answers draw from it meanwhile)."""
    if plan.seed is not None or not plan.timing.jitter:
        return rng
    return random.Random(rng.getrandbits(64))


def error_script(dialect: IDialect, error: APIError) -> tuple[Step, ...]:
    """Answer with ``error`` in the dialect's envelope."""
    headers, body = dialect.error(error)
    return body_head(error.status, dialect.content_type, body, headers), Write(body), FINISH


def body_head(status: int, content_type: bytes, body: bytes, headers: HeaderPairs = ()) -> Head:
    """The head of an answer of ``body``: ``headers``, then its content type and length."""
    return Head(status, (*headers, (b"content-type", content_type), (b"content-length", b"%d" % len(body))))


def _idle() -> int:
    """No other stream is open."""
    return 0


def paced(
    timing: StreamTiming, rng: random.Random, others: Callable[[], int] = _idle
) -> Callable[[bool, int], float]:
    """The pause before each frame: ``pause(leading, sent)``, where ``leading`` says the frame is a
    lead frame before any other and ``sent`` counts the non-lead frames already sent.  A pause
    grows by ``timing.load`` for each of the ``others()`` streams open at the time, then varies by
    the timing's jitter (drawn with ``rng``)."""

    def pause(leading: bool, sent: int) -> float:
        if leading:
            return 0.0
        base = timing.first_token if not sent else timing.inter_token
        if timing.load:
            base += timing.load * others()
        if timing.jitter and base:
            base = jittered(base, timing.distribution, timing.jitter, rng)
        return base

    return pause


def whole_script(dialect: IDialect, body: bytes, fault: Fault) -> tuple[Step, ...]:
    """A whole 200 answer of ``body``; cut half-way (``malformed``), or stalled after its headers."""
    if isinstance(fault, MalformedFault):
        body = body[: len(body) // 2]
    head = body_head(200, dialect.content_type, body)
    if isinstance(fault, StallFault):
        return head, Write(b""), Wait(fault.hold), Close(STALLED)
    if isinstance(fault, MalformedFault):
        return head, Write(body), Finish(CUT)
    return head, Write(body), FINISH


def event_fault(
    dialect: IDialect, request: CompletionRequest, stamp: Stamp | None, fault: Fault, sent: int = 0
) -> tuple[Step, ...]:
    """What a fault puts in place of a stream event (or of the whole answer, before any byte)."""
    if isinstance(fault, ChunkFault):
        return Event(dialect.broken(request, stamp)), Finish(CUT)
    if isinstance(fault, ErrorEventFault):
        error = dialect.fault_error(StatusFault(fault.status))
        return Event(dialect.stream_error(request, stamp, error, sent)), Finish(CUT)
    if isinstance(fault, CloseFault):
        return (Close(),)
    if isinstance(fault, ResetFault):
        return (Abort(),)
    if isinstance(fault, StallFault):
        return Wait(fault.hold), Close(STALLED)
    return (FINISH,)


def stream_script(
    dialect: IDialect,
    request: CompletionRequest,
    reply: Reply,
    stamp: Stamp,
    pause: Callable[[bool, int], float],
    fault: Fault | None = None,
) -> Iterator[Step]:
    """The stream: headers at once, then each paced frame; at event ``fault.at`` (1-based; 0: before
    the first) the fault acts instead (:func:`event_fault`) and the stream ends there."""
    yield Head(200, ((b"content-type", dialect.stream_content_type), *dialect.stream_headers))
    yield Write(b"")
    cut_at = fault.at if fault is not None and fault is not NO_FAULT else None
    if cut_at == 0:
        yield from event_fault(dialect, request, stamp, fault)
        return
    sent = 0
    for number, frame in enumerate(dialect.stream(request, reply, stamp), start=1):
        leading = frame.lead and not sent
        wait = pause(leading, sent)
        first_token = not leading and not sent
        sent += not leading
        if wait > 0:
            yield Wait(wait)
        if number == cut_at:
            yield from _first_token(event_fault(dialect, request, stamp, fault, number - 1), first_token)
            return
        yield Event(frame.data, first_token)
    yield FINISH


def _first_token(steps: tuple[Step, ...], first_token: bool) -> tuple[Step, ...]:
    """``steps`` with an event in place of the first content event marked as such."""
    return tuple(replace(step, first_token=first_token) if isinstance(step, Event) else step for step in steps)


def dripped(steps: Iterable[Step], pause: float) -> Iterator[Step]:
    """``steps`` with the headers flushed at once and every body write and event cut into
    :data:`DRIP_BYTES`-byte pieces, each after a ``pause`` of its own (on the executor's clock)."""
    for step in steps:
        if isinstance(step, (Write, Event)) and step.data:
            data = step.data
            for offset in range(0, len(data), DRIP_BYTES):
                yield Wait(pause)
                piece = data[offset : offset + DRIP_BYTES]
                yield replace(step, data=piece) if offset == 0 else _piece(step, piece)
        else:
            yield step
            if isinstance(step, Head):
                yield Write(b"")


def _piece(step: Write | Event, piece: bytes) -> Write | Event:
    """A later piece of a dripped write or event (not an event of its own)."""
    if isinstance(step, Event):
        return Event(piece, first_token=False, counted=False)
    return Write(piece)
