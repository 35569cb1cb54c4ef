"""
The built-in ``ratelimited`` scenario: token buckets in requests and tokens per minute, per key.

Each key has two buckets that hold a minute's allowance and refill
continuously on the injected clock.  A request costs one request and its
estimated tokens (prompt tokens plus ``max_tokens``/``max_completion_tokens``,
as OpenAI counts them); when either bucket is short, the answer is a 429 whose
``retry-after`` and ``retry-after-ms`` tell the real wait until that request
would pass, and whose ``x-ratelimit-*`` headers tell each bucket's limit, what
remains and its reset (as OpenAI's: the time until that bucket is full again).
"""

from __future__ import annotations

from zope.interface import implementer

from mockllm.scenario import CompletionRequest, IScenario, Parameter, PlanPart, ScenarioState, StatusFault, rate_limit_headers, whole


#: The largest allowance per minute (either bucket): far above any real tier, small enough
#: for the refill arithmetic in floats.
MAX_PER_MINUTE = 10**12

#: Refill arithmetic is in floats; a bucket this close to enough is enough.
EPSILON = 1e-6


def request_tokens(request: CompletionRequest) -> int:
    """The tokens a request is charged: its prompt plus the completion it may ask for."""
    body = request.body
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return request.prompt_tokens + (limit if isinstance(limit, int) else 0)


def refilled(storage: dict, bucket: str, per_minute: int, now: float) -> float:
    """The level of ``bucket`` now (it starts full and refills ``per_minute`` per 60 s, capped)."""
    level, then = storage.get(bucket, (float(per_minute), now))
    return min(float(per_minute), level + (now - then) * per_minute / 60)


def wait_for(level: float, needed: float, per_minute: int) -> float:
    """Seconds until a bucket at ``level`` holds ``needed``."""
    return max(0.0, (needed - level) * 60 / per_minute)


@implementer(IScenario)
class RateLimited:
    """429s from per-key request and token buckets, with headers telling the real wait."""

    name = "ratelimited"
    description = "Per-key token buckets in requests and tokens per minute; 429s tell the real wait."
    parameters = {
        "requests_per_minute": Parameter(60, "Requests each key may make per minute", whole(1, MAX_PER_MINUTE)),
        "tokens_per_minute": Parameter(20000, "Tokens (prompt + max_tokens) each key may use per minute", whole(1, MAX_PER_MINUTE)),
    }

    def plan(self, request: CompletionRequest, caller: object, state: ScenarioState) -> PlanPart:
        """Take one request and its tokens from the buckets, or answer 429 with the wait."""
        rpm, tpm = state.params["requests_per_minute"], state.params["tokens_per_minute"]
        now, cost = state.clock.seconds(), request_tokens(request)
        requests = refilled(state.storage, "requests", rpm, now)
        tokens = refilled(state.storage, "tokens", tpm, now)
        if cost > tpm:
            return PlanPart(fault=_too_large(request.model, (rpm, requests), (tpm, tokens), cost))
        if requests >= 1 - EPSILON and tokens >= cost - EPSILON:
            state.storage["requests"], state.storage["tokens"] = (requests - 1, now), (tokens - cost, now)
            return PlanPart()
        state.storage["requests"], state.storage["tokens"] = (requests, now), (tokens, now)
        request_wait, token_wait = wait_for(requests, 1, rpm), wait_for(tokens, cost, tpm)
        headers = _headers(max(request_wait, token_wait), (rpm, requests), (tpm, tokens))
        limited = "requests" if request_wait >= token_wait else "tokens"
        message = (
            f"Rate limit reached for {request.model} on {limited} per min. "
            f"Limit: {rpm if limited == 'requests' else tpm}. "
            f"Please try again in {max(request_wait, token_wait):.3f}s."
        )
        return PlanPart(fault=StatusFault(429, message, headers))


def _headers(wait: float, requests: tuple[int, float], tokens: tuple[int, float]) -> tuple[tuple[str, str], ...]:
    """
    The 429's headers: ``retry-after`` tells ``wait``; each bucket, given as (per minute,
    level), tells its own limit, what remains and its reset (the time until it is full again).
    """
    (rpm, request_level), (tpm, token_level) = requests, tokens
    return rate_limit_headers(
        wait,
        rpm,
        int(request_level),
        (tpm, int(token_level), wait_for(token_level, tpm, tpm)),
        requests_reset=wait_for(request_level, rpm, rpm),
    )


def _too_large(model: str, requests: tuple[int, float], tokens: tuple[int, float], cost: int) -> StatusFault:
    """The 429 for a request bigger than a whole minute's tokens: waiting will not help."""
    message = (
        f"Request too large for {model} on tokens per min (TPM): Limit {tokens[0]}, Requested {cost}. "
        "The input or output tokens must be reduced in order to run successfully."
    )
    return StatusFault(429, message, _headers(60.0, requests, tokens))


ratelimited = RateLimited()
