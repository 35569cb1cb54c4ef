"""
The built-in ``realistic`` scenario: latency shaped like gpt-4o-mini.

Streams wait a time-to-first-token, then an inter-token pause per chunk, each
with jitter; a non-streamed answer arrives after the time the same reply
would take to stream.  The defaults (about 400 ms to the first token, then
about 14 ms a token, i.e. some 70 tokens a second) are typical published
figures for gpt-4o-mini.
"""

from __future__ import annotations

from zope.interface import implementer

from mockllm.scenario import (
    CompletionRequest,
    IScenario,
    Parameter,
    PlanPart,
    ScenarioState,
    StreamTiming,
    count_tokens,
    decimal,
    draw_reply,
    milliseconds,
)


@implementer(IScenario)
class Realistic:
    """gpt-4o-mini-like time to first token and inter-token latency, with jitter."""

    name = "realistic"
    description = "gpt-4o-mini-like latency: ~400 ms to the first token, ~14 ms per token, with jitter."
    parameters = {
        "first_token_ms": Parameter(400, "Typical time to first token, in ms", milliseconds()),
        "inter_token_ms": Parameter(14, "Typical pause between tokens, in ms", milliseconds()),
        "jitter": Parameter(0.3, "Each wait varies by up to this fraction either way", decimal(0, 1)),
    }

    def plan(self, request: CompletionRequest, caller: object, state: ScenarioState) -> PlanPart:
        """Stream timing for streams; for the rest, a reply and the time it would take to stream."""
        params, rng = state.params, state.rng
        jitter = params["jitter"]
        first_token = params["first_token_ms"] / 1000 * (1 + rng.uniform(-jitter, jitter))
        inter_token = params["inter_token_ms"] / 1000
        timing = StreamTiming(first_token, inter_token, jitter)
        if request.stream:
            return PlanPart(delay=0.0, timing=timing)
        reply = draw_reply(rng, request.texts[-1] if request.texts else "")
        generation = count_tokens(reply) * inter_token * (1 + rng.uniform(-jitter, jitter))
        # its own timing, so that a model's latency table does not make the answer wait twice
        return PlanPart(delay=first_token + generation, content=reply, timing=timing)


realistic = Realistic()
