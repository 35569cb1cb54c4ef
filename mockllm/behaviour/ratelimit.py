"""
Rate limits: per caller key and model, token buckets of requests and tokens per minute.

Each (key, model) has two buckets, one of requests and one of tokens, holding a minute's
allowance (the model's :class:`~mockllm.config.model.ModelLimits`).  They start full and
refill continuously on the injected clock.  A request costs one request and
:func:`request_tokens` tokens (its prompt plus its ``max_tokens``, OpenAI's estimate of the
completion).  :meth:`Meter.charge` spends both if both hold enough, else neither, and says
where the key stands (:class:`Standing`): each bucket's limit, what remains and its reset
(the time until it is full again, as OpenAI's ``x-ratelimit-reset-*`` tell), and, when the
request was not admitted, how long until it would be.

Every answer tells the standing in its ``x-ratelimit-*`` headers; only the ``ratelimited``
scenario turns "not admitted" into a 429 (without it a key's buckets still count down, and
a request they cannot pay for is answered anyway, without being charged).

Design note: the state behind it
--------------------------------
All state is one :class:`IBucketStore` whose single operation, :meth:`IBucketStore.take`,
is an atomic "refill every bucket named to now, then spend all the costs or none" and
returns the levels.  :class:`MemoryBuckets` is the in-process store (bounded: the least
recently used buckets fall out).  A store shared by several processes, such as Redis, would
implement ``take`` as one server-side script over the buckets' keys (level and time per
key, with a TTL of a minute), return a ``Deferred`` of the same result, and
:class:`RateLimiter` would hand that on (``Completions`` would wait for it before planning);
nothing else would change, since nobody but the limiter reads the store.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

from zope.interface import Interface, implementer

from mockllm.behaviour.request import CompletionRequest
from mockllm.config.model import ModelLimits
from mockllm.dialects.openai import limit_header_bytes, rate_limit_headers
from mockllm.frozen import Frozen, frozen

#: Refill arithmetic is in floats on epoch times (about 1e-7 s apart at best); a bucket this
#: close to enough is enough.
EPSILON = 1e-3
#: How many buckets :class:`MemoryBuckets` keeps (two per key and model).
DEFAULT_MAX_BUCKETS = 20_000


@frozen
class Demand(Frozen):
    """One bucket a request draws on: its name, its allowance per minute and what it costs."""

    bucket: str
    per_minute: int
    cost: float


def refilled(level: float, then: float, per_minute: int, now: float) -> float:
    """A bucket's level at ``now``, from ``level`` at ``then``: refilled ``per_minute`` per 60 s, capped."""
    return min(float(per_minute), level + max(0.0, now - then) * per_minute / 60)


def wait_for(level: float, needed: float, per_minute: int) -> float:
    """Seconds until a bucket at ``level`` holds ``needed``."""
    return max(0.0, (needed - level) * 60 / per_minute)


class IBucketStore(Interface):
    """Where bucket levels live (see the module's design note)."""

    def take(demands, now):
        """Refill each of ``demands``' buckets to ``now`` (a new one starts full); if each holds
        its cost, spend them all.  Return ``(spent, levels)``: whether they were spent and each
        bucket's level after that, in the order of ``demands``."""

    def clear():
        """Forget every bucket (they start full again)."""


@implementer(IBucketStore)
class MemoryBuckets:
    """Bucket levels in this process; only the ``max_buckets`` most recently used are kept."""

    def __init__(self, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        self._max = max_buckets
        #: bucket name -> (level, when it was that); least recently used first.
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, demands: tuple[Demand, ...], now: float) -> tuple[bool, tuple[float, ...]]:
        """See :meth:`IBucketStore.take`."""
        store = self._levels
        levels = []
        spent = True
        for demand in demands:
            level, then = store.pop(demand.bucket, (float(demand.per_minute), now))
            level = refilled(level, then, demand.per_minute, now)
            spent = spent and level >= demand.cost - EPSILON
            levels.append(level)
        if spent:
            levels = [max(0.0, level - demand.cost) for level, demand in zip(levels, demands)]
        for level, demand in zip(levels, demands):
            store[demand.bucket] = (level, now)  # re-inserted last: the most recently used
        while len(store) > self._max:
            store.popitem(last=False)
        return spent, tuple(levels)

    def clear(self) -> None:
        """See :meth:`IBucketStore.clear`."""
        self._levels.clear()

    def __len__(self) -> int:
        return len(self._levels)


def completion_budget(request: CompletionRequest) -> int:
    """The completion tokens a request may ask for: ``max_tokens`` (or ``max_completion_tokens``), else 0."""
    if request.max_tokens is not None:
        return request.max_tokens
    body = request.body
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        limit = body.get(name)
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return limit
    return 0


def request_tokens(request: CompletionRequest) -> int:
    """The tokens a request is charged: its prompt plus the completion it may ask for."""
    return request.prompt_tokens + completion_budget(request)


@frozen
class Bucket(Frozen):
    """One bucket after a charge: its allowance per minute and its level."""

    limit: int
    level: float

    @property
    def remaining(self) -> int:
        """Whole units left (``x-ratelimit-remaining-*``)."""
        return max(0, math.floor(self.level + EPSILON))

    @property
    def reset(self) -> float:
        """Seconds until the bucket is full again (``x-ratelimit-reset-*``)."""
        return wait_for(self.level, self.limit, self.limit)


@frozen
class Standing(Frozen):
    """Where a key stands after one request's charge."""

    requests: Bucket
    tokens: Bucket
    #: The tokens the request costs.
    cost: int
    #: Whether it was charged (both buckets held enough).
    admitted: bool

    @property
    def too_large(self) -> bool:
        """The request costs more tokens than a whole minute's: waiting will not help."""
        return self.cost > self.tokens.limit

    @property
    def request_wait(self) -> float:
        """Seconds until the request bucket holds one request (0 once admitted)."""
        return 0.0 if self.admitted else wait_for(self.requests.level, 1, self.requests.limit)

    @property
    def token_wait(self) -> float:
        """Seconds until the token bucket holds the request's cost (0 once admitted)."""
        return 0.0 if self.admitted else wait_for(self.tokens.level, self.cost, self.tokens.limit)

    @property
    def wait(self) -> float:
        """Seconds until this request would be admitted (0 once it is)."""
        return max(self.request_wait, self.token_wait)

    @property
    def limited(self) -> str:
        """The bucket that holds the request back longer: ``"requests"`` or ``"tokens"``."""
        return "requests" if self.request_wait >= self.token_wait else "tokens"

    def headers(self, wait: float | None = None) -> tuple[tuple[str, str], ...]:
        """The 429's headers telling ``wait`` (default :attr:`wait`): ``retry-after*`` and ``x-ratelimit-*``."""
        return rate_limit_headers(
            self.wait if wait is None else wait,
            self.requests.limit,
            self.requests.remaining,
            (self.tokens.limit, self.tokens.remaining, self.tokens.reset),
            requests_reset=self.requests.reset,
        )

    def limit_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The ``x-ratelimit-*`` headers every answer carries, as byte pairs."""
        requests, tokens = self.requests, self.tokens
        return limit_header_bytes(
            requests.limit, requests.remaining, requests.reset, tokens.limit, tokens.remaining, tokens.reset
        )


class RateLimiter:
    """The buckets of every key and model, charged through a :class:`Meter` per request."""

    def __init__(self, limits_of: Callable[[str], ModelLimits], store: IBucketStore | None = None) -> None:
        """``limits_of(model)``: that model's limits (``ModelsConfig.limits_of``)."""
        self._limits_of = limits_of
        self._store = store if store is not None else MemoryBuckets()

    def meter(self, key: str, request: CompletionRequest, now: float) -> "Meter":
        """The charge of ``request`` from ``key`` at ``now``, made when first asked for."""
        return Meter(self, key, request, now)

    def charge(
        self, key: str, request: CompletionRequest, now: float, limits: tuple[int | None, int | None] = (None, None)
    ) -> Standing:
        """Charge ``request`` to ``key``'s buckets of its model; ``limits``: requests and tokens per
        minute instead of the model's (``None``: the model's)."""
        model = self._limits_of(request.model)
        rpm = limits[0] or model.requests_per_minute
        tpm = limits[1] or model.tokens_per_minute
        cost = request_tokens(request)
        prefix = f"{key}\x00{request.model}\x00"
        demands = (Demand(prefix + "requests", rpm, 1), Demand(prefix + "tokens", tpm, cost if cost <= tpm else math.inf))
        admitted, (requests, tokens) = self._store.take(demands, now)
        return Standing(Bucket(rpm, requests), Bucket(tpm, tokens), cost, admitted)

    def reset(self) -> None:
        """Every bucket full again (``POST /__admin/reset``)."""
        self._store.clear()


class Meter:
    """One request's charge, made once: by the ``ratelimited`` scenario (with its own limits, if
    it has any), else when the answer's headers are made."""

    def __init__(self, limiter: RateLimiter, key: str, request: CompletionRequest, now: float) -> None:
        self._limiter = limiter
        self._key = key
        self._request = request
        self._now = now
        self._standing: Standing | None = None

    def charge(self, limits: tuple[int | None, int | None] = (None, None)) -> Standing:
        """The standing after this request's charge (made on the first call only).

        ``limits``: requests and tokens per minute overriding the model's (``None``: the model's).
        """
        if self._standing is None:
            self._standing = self._limiter.charge(self._key, self._request, self._now, limits)
        return self._standing
