"""
The answer engine: turns a resolved :class:`~mockllm.behaviour.plan.Plan` into a script.

A script is an iterator of steps (:mod:`.steps`), produced lazily: what comes after a wait
(the reply, its id and ``created`` time) is only computed once the wait is over.  The
engine knows no wire format (the request's dialect renders every byte) and no HTTP (the
executor runs the steps).  Where a fault acts is where it sits in the script:

- a status fault: the dialect's error answer, after the plan's delay;
- a timeout: the delay, then the hold, then a 504;
- ``fail_chunk=N``: events 1 .. N-1 as usual, then the dialect's malformed event in place of
  event N, and the answer ends there (``cut-by-fault``).

Pacing of a stream: lead frames (chat's role event) go at once; the first frame after them
waits the time to first token, every later one the inter-token pause, each with the plan's
jitter.
"""

from __future__ import annotations

import itertools
import random
from typing import Callable, Iterable, Iterator

from twisted.internet.interfaces import IReactorTime

from mockllm.behaviour.compose import compose
from mockllm.behaviour.errors import APIError
from mockllm.behaviour.plan import ChunkFault, Plan, StatusFault, StreamTiming, TimeoutFault
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import CUT, FINISH, Count, Event, Finish, Head, Step, Wait, Write
from mockllm.dialects import IDialect

class Engine:
    """Writes the script of each answer: the plan's delay, its fault or its reply."""

    def __init__(self, clock: IReactorTime, ids: random.Random, rng: random.Random) -> None:
        self._clock = clock
        #: Answer ids; apart from ``rng`` so that ids never shift seeded replies.
        self._ids = ids
        #: Replies and jitter of plans without a seed of their own.
        self._rng = rng

    def script(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterable[Step]:
        """The steps answering ``request`` as ``plan`` says (after the plan's delay, if any)."""
        if plan.delay > 0:
            return self._delayed(dialect, request, plan)
        return self._answer(dialect, request, plan)

    def _delayed(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterator[Step]:
        yield Wait(plan.delay)
        yield from self._answer(dialect, request, plan)

    def _answer(self, dialect: IDialect, request: CompletionRequest, plan: Plan) -> Iterable[Step]:
        """The fault's steps, or the reply's: drawn, stamped and rendered now."""
        fault = plan.fault
        if isinstance(fault, StatusFault):
            return error_script(dialect, dialect.fault_error(fault))
        if isinstance(fault, TimeoutFault):
            return (Wait(fault.hold), *error_script(dialect, dialect.fault_error(StatusFault(504))))
        rng = random.Random(plan.seed) if plan.seed is not None else self._rng
        reply = self.reply(plan, request, rng) if dialect.replies else Reply(())
        stamp = Stamp(dialect.new_id(self._ids), int(self._clock.seconds()))
        count = Count(reply.completion_tokens)
        if request.stream:
            cut_at = fault.chunk if isinstance(fault, ChunkFault) else None
            return itertools.chain((count,), stream_script(dialect, request, reply, stamp, paced(plan.timing, rng), cut_at))
        body = dialect.render(request, reply, stamp)
        head = Head(200, ((b"content-type", dialect.content_type), (b"content-length", b"%d" % len(body))))
        return count, head, Write(body), FINISH

    @staticmethod
    def reply(plan: Plan, request: CompletionRequest, rng: random.Random) -> Reply:
        """The plan's whole :class:`Reply` as it is, else one composed for ``request`` with ``rng``
        (around the plan's fixed text, if any, so ``n``, ``max_tokens`` and ``stop`` still apply)."""
        content = plan.content
        if isinstance(content, Reply):
            return content
        return compose(request, rng, content)


def error_script(dialect: IDialect, error: APIError) -> tuple[Step, ...]:
    """Answer with ``error`` in the dialect's envelope."""
    headers, body = dialect.error(error)
    length = (b"content-length", b"%d" % len(body))
    return Head(error.status, (*headers, (b"content-type", dialect.content_type), length)), Write(body), FINISH


def paced(timing: StreamTiming, rng: random.Random) -> Callable[[bool, int], float]:
    """The pause before each frame: ``pause(leading, sent)``, where ``leading`` says the frame is a
    lead frame before any other and ``sent`` counts the non-lead frames already sent."""

    def pause(leading: bool, sent: int) -> float:
        if leading:
            return 0.0
        base = timing.first_token if not sent else timing.inter_token
        if timing.jitter and base:
            base *= 1 + rng.uniform(-timing.jitter, timing.jitter)
        return base

    return pause


def stream_script(
    dialect: IDialect,
    request: CompletionRequest,
    reply: Reply,
    stamp: Stamp,
    pause: Callable[[bool, int], float],
    cut_at: int | None = None,
) -> Iterator[Step]:
    """The stream: headers at once, then each paced frame; event ``cut_at`` (1-based) is malformed and ends it."""
    yield Head(200, ((b"content-type", dialect.stream_content_type), *dialect.stream_headers))
    yield Write(b"")
    sent = 0
    for number, frame in enumerate(dialect.stream(request, reply, stamp), start=1):
        leading = frame.lead and not sent
        wait = pause(leading, sent)
        first_token = not leading and not sent
        sent += not leading
        if wait > 0:
            yield Wait(wait)
        if number == cut_at:
            yield Event(dialect.broken(request, stamp), first_token)
            yield Finish(CUT)
            return
        yield Event(frame.data, first_token)
    yield FINISH
