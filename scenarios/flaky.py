"""The built-in ``flaky`` scenario: the first N requests of each key fail, then they succeed."""

from __future__ import annotations

from zope.interface import implementer

from mockllm.scenario import NO_OPINION, IScenario, Parameter, PlanPart, ScenarioState, StatusFault, whole

#: The most requests ``fail_first`` may fail per key.
MAX_FAIL_FIRST = 1_000_000_000


@implementer(IScenario)
class Flaky:
    """Fails each key's first ``fail_first`` requests with ``fail_status``; no opinion afterwards."""

    name = "flaky"
    description = "The first N requests of each key (X-Mock-Key, cert subject or address) fail, then succeed."
    parameters = {
        "fail_first": Parameter(3, "How many requests of each key fail", whole(0, MAX_FAIL_FIRST)),
        "fail_status": Parameter(503, "The status those requests get", whole(400, 599)),
    }

    def plan(self, request: object, caller: object, state: ScenarioState) -> PlanPart:
        """A fault while this key's count is within ``fail_first``."""
        seen = state.storage["seen"] = state.storage.get("seen", 0) + 1
        if seen <= state.params["fail_first"]:
            return PlanPart(fault=StatusFault(state.params["fail_status"]))
        return NO_OPINION


flaky = Flaky()
