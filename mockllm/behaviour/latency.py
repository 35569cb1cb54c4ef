"""
The latency model's arithmetic: the jitter of one pause, and how long a whole answer takes.

A pause's jitter is a factor drawn from the timing's distribution (:data:`FACTORS`, one per
name of :data:`~mockllm.config.model.JITTERS`) with the request's own seeded generator, so
``--seed`` reproduces it; no factor is below 0.  A whole answer whose latency was asked for
waits the time generating it takes (:func:`generation_time`): the time to first token, then
an inter-token pause per further token of its longest choice (choices are generated side by
side), each pause drawn as a stream's would be.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Mapping

from mockllm.behaviour.reply import Reply

#: ``factor(rng, spread)`` for each jitter distribution; ``spread`` is the timing's ``jitter``.
FACTORS: Mapping[str, Callable[[random.Random, float], float]] = {
    "none": lambda rng, spread: 1.0,
    "uniform": lambda rng, spread: 1 + rng.uniform(-spread, spread),
    "normal": lambda rng, spread: max(rng.gauss(1.0, spread), 0.0),
    "lognormal": lambda rng, spread: rng.lognormvariate(-spread * spread / 2, spread),
}


def jittered(base: float, distribution: str, spread: float, rng: random.Random) -> float:
    """``base`` times a factor drawn from ``distribution`` with ``spread`` (never below 0)."""
    return max(base * FACTORS[distribution](rng, spread), 0.0)


def generation_time(pause: Callable[[bool, int], float], reply: Reply) -> float:
    """The seconds generating ``reply`` takes: ``pause(False, 0)`` (the time to first token), then
    ``pause(False, n)`` for each further token of its longest choice."""
    tokens = max((choice.tokens for choice in reply.choices), default=0)
    return math.fsum(pause(False, sent) for sent in range(max(tokens, 1)))
