"""
The built-in ``ratelimited`` scenario: enforces the per-key token buckets of requests and tokens per minute.

Every completion is charged to its key's buckets of its model (see
:mod:`mockllm.behaviour.ratelimit`): one request and its estimated tokens (prompt tokens
plus ``max_tokens``/``max_completion_tokens``, as OpenAI counts them), at the model's
configured limits (``[models.limits."ID"]``) unless this scenario's parameters give others.
Under this scenario a request the buckets cannot pay for is a 429 whose ``retry-after`` and
``retry-after-ms`` tell the real wait until it would pass, and whose ``x-ratelimit-*``
headers tell each bucket's limit, what remains and its reset (as OpenAI's: the time until
that bucket is full again).

Run by a scenario runner without the app's rate limiter (a scenario's own tests), the
buckets live in the scenario's per-key storage instead.
"""

from __future__ import annotations

from zope.interface import implementer

from mockllm.scenario import (
    NO_OPINION,
    CompletionRequest,
    IScenario,
    Meter,
    ModelLimits,
    Parameter,
    PlanPart,
    RateLimiter,
    ScenarioState,
    Standing,
    StatusFault,
    optional,
    request_tokens,
    whole,
)

#: The largest allowance per minute (either bucket): far above any real tier, small enough
#: for the refill arithmetic in floats.
MAX_PER_MINUTE = 10**12

__all__ = ["MAX_PER_MINUTE", "RateLimited", "ratelimited", "request_tokens"]


def _limit(what: str) -> Parameter:
    return Parameter(
        None,
        f"{what.capitalize()} each key may use per minute (null: the model's [models.limits] value)",
        optional(whole(1, MAX_PER_MINUTE), "the model's configured limit"),
    )


@implementer(IScenario)
class RateLimited:
    """429s from per-key request and token buckets, with headers telling the real wait."""

    name = "ratelimited"
    description = "Enforces the per-key buckets of requests and tokens per minute; 429s tell the real wait."
    parameters = {
        "requests_per_minute": _limit("requests"),
        "tokens_per_minute": _limit("tokens (prompt + max_tokens)"),
    }

    def plan(self, request: CompletionRequest, caller: object, state: ScenarioState) -> PlanPart:
        """Charge the request to its key's buckets, or answer 429 with the wait."""
        meter = getattr(caller, "meter", None) or _own_meter(request, state)
        standing = meter.charge((state.params["requests_per_minute"], state.params["tokens_per_minute"]))
        if standing.admitted:
            return NO_OPINION
        if standing.too_large:
            return PlanPart(fault=_too_large(request.model, standing))
        limited = standing.limited
        message = (
            f"Rate limit reached for {request.model} on {limited} per min. "
            f"Limit: {getattr(standing, limited).limit}. "
            f"Please try again in {standing.wait:.3f}s."
        )
        return PlanPart(fault=StatusFault(429, message, standing.headers()))


def _own_meter(request: CompletionRequest, state: ScenarioState) -> Meter:
    """A meter over buckets kept in this key's scenario storage (no app limiter: default limits)."""
    limiter = state.storage.setdefault("limiter", RateLimiter(lambda model: ModelLimits()))
    return limiter.meter(state.key, request, state.clock.seconds())


def _too_large(model: str, standing: Standing) -> StatusFault:
    """The 429 for a request bigger than a whole minute's tokens: waiting will not help."""
    message = (
        f"Request too large for {model} on tokens per min (TPM): Limit {standing.tokens.limit}, Requested {standing.cost}. "
        "The input or output tokens must be reduced in order to run successfully."
    )
    return StatusFault(429, message, standing.headers(60.0))


ratelimited = RateLimited()
