"""
The built-in profiles: ``default`` and the gpt-4o-mini plan's ``fast``, ``slow``, ``errors``, ``timeout``.

Each is only a set of defaults for the common parameters (delay, error rate,
error statuses); the scenario layer applies them to every request.
"""

from __future__ import annotations

from typing import Any, Mapping

from zope.interface import implementer

from mockllm.scenario import COMMON, NO_OPINION, IScenario, Parameter, PlanPart


@implementer(IScenario)
class Profile:
    """A scenario that is only different defaults for the common parameters."""

    def __init__(self, name: str, description: str, **defaults: Any) -> None:
        self.name = name
        self.description = description
        self.parameters: Mapping[str, Parameter] = {
            key: Parameter(value, COMMON[key].description, COMMON[key].check) for key, value in defaults.items()
        }

    def plan(self, request: object, caller: object, state: object) -> PlanPart:
        """No opinion of its own: the common parameters decide."""
        return NO_OPINION


default = Profile(
    "default", "No added delay, no errors beyond the configuration's (what runs without --scenario)."
)
fast = Profile("fast", "Fast responses: 10 ms, no errors.", default_delay_ms=10, error_rate_percent=0)
slow = Profile("slow", "Slow responses: 5000 ms, no errors.", default_delay_ms=5000, error_rate_percent=0)
errors = Profile(
    "errors",
    "Error scenarios: 100 ms, 10% of requests fail with a 429, 500 or 503.",
    default_delay_ms=100,
    error_rate_percent=10,
)
timeout = Profile(
    "timeout", "Timeout scenarios: 30000 ms before each answer, no errors.", default_delay_ms=30000, error_rate_percent=0
)
