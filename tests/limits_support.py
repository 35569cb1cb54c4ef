"""
Helpers for the rate-limit, context-window, API-key and response-rule tests.

:func:`limited_app` builds an app on a ``task.Clock`` the way ``mockllm.server.build`` does:
the built-in scenarios (one of them current), one rate limiter and one rule book shared by
the app and its admin API.  :func:`post` sends one chat completion over :class:`RawHTTP`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from twisted.internet.task import Clock

from mockllm.admin.access import AdminAccess
from mockllm.admin.api import Admin
from mockllm.behaviour.ratelimit import RateLimiter
from mockllm.behaviour.rules import RuleBook
from mockllm.config import Config
from mockllm.http.routes import MockLLM, route_templates
from mockllm.observe.journal import Journal
from mockllm.observe.metrics import Metrics
from mockllm.scenario import ScenarioRunner, define, discover
from mockllm.server import Observers
from tests.support import CHAT_BODY, RawHTTP

CHAT = "/v1/chat/completions"
#: The ``x-ratelimit-*`` header names every charged answer carries.
LIMIT_HEADERS = tuple(
    f"x-ratelimit-{kind}-{bucket}" for kind in ("limit", "remaining", "reset") for bucket in ("requests", "tokens")
)


@dataclass
class Limited:
    """An app and what the test may look at or drive."""

    app: MockLLM
    clock: Clock
    scenarios: ScenarioRunner
    rate_limits: RateLimiter
    rules: RuleBook
    journal: Journal


def limited_app(config: Config | None = None, scenario: str = "default") -> Limited:
    """An app on a fresh clock with ``scenario`` current and an admin API for loopback."""
    config = config or Config()
    clock = Clock()
    clock.advance(1_700_000_000)
    scenarios = ScenarioRunner(define(discover().scenarios, config.scenarios), clock, scenario, 0, config.responses)
    rate_limits = RateLimiter(config.models.limits_of)
    rules = RuleBook.of(config.rules, config.responses, random.Random(1))
    observers = Observers(Journal(100), Metrics(route_templates()), console=False)
    admin = Admin(observers.journal, scenarios, AdminAccess(), rate_limits=rate_limits, rules=rules)
    app = MockLLM(
        config, clock, rng=random.Random(0), scenarios=scenarios, observers=observers.observers(),
        admin=admin.resource(), rate_limits=rate_limits, rules=rules,
    )
    return Limited(app, clock, scenarios, rate_limits, rules, observers.journal)


def post(app: MockLLM, body: Any = None, headers: dict[str, str] | None = None, path: str = CHAT) -> RawHTTP:
    """POST ``body`` (default: the standard chat body) to ``path`` over a fresh connection."""
    return RawHTTP(app).send("POST", path, CHAT_BODY if body is None else body, headers)


def limit_headers(conn: RawHTTP) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of an answer."""
    return {name: value for name, value in conn.headers.items() if name.startswith("x-ratelimit-")}
