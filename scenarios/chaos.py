"""
The built-in ``chaos`` scenario: a seeded mix of everything.

Every request gets a random delay and, for streams, random chunk timing; a
``fault_percent`` share of requests also gets one fault, drawn by weight
(``weight_<kind>`` parameters, from the TOML or ``PUT /__admin/scenario``) from
the kinds that fit the request: an error status, a timeout (silence, then 504),
a reset (RST), a close (FIN), a stall (headers, then silence, then close), a
malformed whole answer, a dripped body, and for streams a malformed event or an
in-band error event mid-way.  By default only the first three of the original
mix (status, timeout, malformed event) weigh anything.  All draws use the
seeded ``state.rng``.
"""

from __future__ import annotations

from typing import Callable

from zope.interface import implementer

from mockllm.scenario import (
    COMMON,
    NO_OPINION,
    ChunkFault,
    CloseFault,
    CompletionRequest,
    ErrorEventFault,
    IScenario,
    MalformedFault,
    Parameter,
    PlanPart,
    ResetFault,
    ScenarioState,
    StallFault,
    StatusFault,
    StreamTiming,
    TimeoutFault,
    decimal,
    milliseconds,
    statuses,
)

#: The last stream event a mid-stream fault may act at (a reset, close or stall may also act at 0: before any event).
LAST_EVENT = 8

Draw = Callable[[CompletionRequest, ScenarioState], PlanPart]


def _at(request: CompletionRequest, state: ScenarioState, first: int) -> int:
    """Where a fault acts: 0 for a whole answer, else a stream event from ``first`` to :data:`LAST_EVENT`."""
    return state.rng.randint(first, LAST_EVENT) if request.stream else 0


#: kind -> (streams only, what it plans).
KINDS: dict[str, tuple[bool, Draw]] = {
    "status": (False, lambda r, s: PlanPart(fault=StatusFault(s.rng.choice(s.params["error_statuses"])))),
    "timeout": (False, lambda r, s: PlanPart(fault=TimeoutFault(s.params["timeout_ms"] / 1000))),
    "chunk": (True, lambda r, s: PlanPart(fault=ChunkFault(s.rng.randint(2, LAST_EVENT)))),
    "error_event": (
        True,
        lambda r, s: PlanPart(fault=ErrorEventFault(s.rng.randint(2, LAST_EVENT), s.rng.choice(s.params["error_statuses"]))),
    ),
    "reset": (False, lambda r, s: PlanPart(fault=ResetFault(_at(r, s, 0)))),
    "close": (False, lambda r, s: PlanPart(fault=CloseFault(_at(r, s, 0)))),
    "stall": (False, lambda r, s: PlanPart(fault=StallFault(s.params["timeout_ms"] / 1000, _at(r, s, 0)))),
    "malformed": (False, lambda r, s: PlanPart(fault=MalformedFault())),
    "drip": (False, lambda r, s: PlanPart(drip=s.params["drip_ms"] / 1000)),
}
#: The weight each kind has unless the configuration says otherwise (the original mix).
DEFAULT_WEIGHTS = {"status": 1.0, "timeout": 1.0, "chunk": 1.0}


def _weight(kind: str) -> Parameter:
    return Parameter(DEFAULT_WEIGHTS.get(kind, 0.0), f"Relative weight of the {kind} fault", decimal(0, 1000))


@implementer(IScenario)
class Chaos:
    """Random delays, timings and faults drawn by weight."""

    name = "chaos"
    description = "A seeded mix of everything: random delays and stream timing, errors, timeouts, cut streams, weighted resets, closes, stalls and drips."
    parameters = {
        "fault_percent": Parameter(30.0, "Percent of requests that get a fault", decimal(0, 100)),
        "max_delay_ms": Parameter(2000, "Delays are drawn from 0 to this many ms", milliseconds()),
        "timeout_ms": Parameter(10000, "How long a timeout or stall fault stays silent, in ms", milliseconds()),
        "drip_ms": Parameter(50, "The pause between the pieces of a dripped body, in ms", milliseconds()),
        "error_statuses": Parameter((429, 500, 502, 503), COMMON["error_statuses"].description, statuses()),
        **{f"weight_{kind}": _weight(kind) for kind in KINDS},
    }

    def plan(self, request: CompletionRequest, caller: object, state: ScenarioState) -> PlanPart:
        """A random delay and timing, and a fault for ``fault_percent`` of requests."""
        params, rng = state.params, state.rng
        delay = rng.uniform(0, params["max_delay_ms"]) / 1000
        timing = StreamTiming(rng.uniform(0, 1.0), rng.uniform(0.005, 0.1), 0.5)
        faulty = rng.random() * 100 < params["fault_percent"]
        fault = self._fault(request, state) if faulty else NO_OPINION
        return PlanPart(delay=delay, fault=fault.fault, timing=timing, drip=fault.drip)

    def _fault(self, request: CompletionRequest, state: ScenarioState) -> PlanPart:
        """One fault, drawn by weight from those that fit the request (none if no weight is left)."""
        fitting = [kind for kind, (streams, _) in KINDS.items() if request.stream or not streams]
        weights = [state.params[f"weight_{kind}"] for kind in fitting]
        if not any(weights):
            return NO_OPINION
        kind = state.rng.choices(fitting, weights)[0]
        return KINDS[kind][1](request, state)


chaos = Chaos()
