"""
The built-in ``chaos`` scenario: a seeded mix of everything.

Every request gets a random delay and, for streams, random chunk timing; a
``fault_percent`` share of requests also gets one fault, drawn evenly from an
error status, a timeout (silence, then 504) and, for streams, a malformed
chunk that ends the stream mid-way.  All draws use the seeded ``state.rng``.
"""

from __future__ import annotations

from zope.interface import implementer

from mockllm.scenario import (
    COMMON,
    ChunkFault,
    CompletionRequest,
    Fault,
    IScenario,
    Parameter,
    PlanPart,
    ScenarioState,
    StatusFault,
    StreamTiming,
    TimeoutFault,
    decimal,
    milliseconds,
    statuses,
)


@implementer(IScenario)
class Chaos:
    """Random delays, timings and faults (statuses, timeouts, mid-stream cuts)."""

    name = "chaos"
    description = "A seeded mix of everything: random delays and stream timing, errors, timeouts, cut streams."
    parameters = {
        "fault_percent": Parameter(30.0, "Percent of requests that get a fault", decimal(0, 100)),
        "max_delay_ms": Parameter(2000, "Delays are drawn from 0 to this many ms", milliseconds()),
        "timeout_ms": Parameter(10000, "How long a timeout fault stays silent before its 504, in ms", milliseconds()),
        "error_statuses": Parameter((429, 500, 502, 503), COMMON["error_statuses"].description, statuses()),
    }

    def plan(self, request: CompletionRequest, caller: object, state: ScenarioState) -> PlanPart:
        """A random delay and timing, and a fault for ``fault_percent`` of requests."""
        params, rng = state.params, state.rng
        delay = rng.uniform(0, params["max_delay_ms"]) / 1000
        timing = StreamTiming(rng.uniform(0, 1.0), rng.uniform(0.005, 0.1), 0.5)
        fault = self._fault(request, state) if rng.random() * 100 < params["fault_percent"] else None
        return PlanPart(delay=delay, fault=fault, timing=timing)

    def _fault(self, request: CompletionRequest, state: ScenarioState) -> Fault:
        """One fault, evenly drawn from those that fit the request."""
        rng = state.rng
        kinds = ["status", "timeout"] + (["chunk"] if request.stream else [])
        kind = rng.choice(kinds)
        if kind == "status":
            return StatusFault(rng.choice(state.params["error_statuses"]))
        if kind == "timeout":
            return TimeoutFault(state.params["timeout_ms"] / 1000)
        return ChunkFault(rng.randint(2, 8))


chaos = Chaos()
