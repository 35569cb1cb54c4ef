"""
Answering one completion request: body → dialect → plan → engine → executor.

:class:`Completions` reads the body (within ``max_body_bytes``), has the route's dialect
parse it, checks the model and streaming, identifies the caller, asks the scenario layer,
resolves the plan (request controls > scenario > configuration), and runs the engine's
script with an :class:`~mockllm.behaviour.executor.Executor`.  Every problem before the
plan is an error answer in the dialect's envelope.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from mockllm.behaviour.caller import Caller, caller_key
from mockllm.behaviour.controls import ControlLookup, parse_controls, parse_stream_flag, query_args
from mockllm.behaviour.engine import Engine, error_script
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.executor import Executor
from mockllm.behaviour.plan import PlanPart, StreamTiming, fitting, resolve
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Step
from mockllm.config import Config
from mockllm.dialects import IDialect
from mockllm.dialects.openai import body_too_large
from mockllm.http.exchanges import Exchanges
from mockllm.observe.exchange import Exchange


class ScenarioChooser(Protocol):
    """Picks the scenario layer of a request's plan (a :class:`~mockllm.behaviour.scenarios.ScenarioRunner`)."""

    def plan(self, request: CompletionRequest, caller: Caller) -> tuple[str, PlanPart]:
        """The scenario's name and its opinion on this request."""


class NoScenario:
    """The scenario layer when the app is built without one (tests): no opinion on anything.

    A real server always has a :class:`~mockllm.behaviour.scenarios.ScenarioRunner`, which
    is also what applies ``[responses] error_rate_percent``.
    """

    def plan(self, request: CompletionRequest, caller: Caller) -> tuple[str, PlanPart]:
        """Always ``("default", PlanPart())``."""
        return "default", PlanPart()


def config_layer(config: Config) -> PlanPart:
    """The configuration's layer of every plan: the default delay and the stream pacing."""
    responses = config.responses
    interval = responses.stream_interval_ms / 1000
    return PlanPart(
        delay=responses.default_delay_ms / 1000,
        timing=StreamTiming(first_token=interval, inter_token=interval),
    )


class Completions:
    """Answers completion requests in any dialect."""

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        exchanges: Exchanges,
        engine: Engine,
        scenarios: ScenarioChooser,
    ) -> None:
        self._config = config
        self._clock = clock
        self._exchanges = exchanges
        self._engine = engine
        self._scenarios = scenarios
        self._models = frozenset(config.models.available)
        self._config_layer = config_layer(config)

    def serves(self, model: str) -> bool:
        """Whether ``model`` is one of the configured models."""
        return model in self._models

    def answer(self, request: IRequest, dialect: IDialect) -> bytes | Deferred:
        """Answer ``request`` as ``dialect`` speaks; a Deferred while the answer takes time."""
        ex = self._exchanges.begin(request)
        limit = self._config.server.max_body_bytes
        raw = request.content.read(limit + 1)
        ex.body = raw
        try:
            if len(raw) > limit:
                raise body_too_large(limit)
            creq, caller, controls = self._validate(request, raw, dialect, ex)
            ex.key = caller.key
            ex.stream = creq.stream
            ex.scenario, scenario_part = self._scenarios.plan(creq, caller)
        except APIError as error:
            return self.fail(request, ex, dialect, error)
        plan = resolve(controls, scenario_part, self._config_layer)
        plan = replace(plan, fault=fitting(plan.fault, creq.stream))  # a stream fault without a stream: none
        ex.fault, ex.fault_at = plan.fault_name, plan.fault_at
        return self.run(request, ex, dialect, self._engine.script(dialect, creq, plan))

    def fail(self, request: IRequest, ex: Exchange, dialect: IDialect, error: APIError) -> bytes | Deferred:
        """Answer with ``error`` (recorded as the exchange's reason)."""
        ex.error = error.message
        return self.run(request, ex, dialect, error_script(dialect, error))

    def run(self, request: IRequest, ex: Exchange, dialect: IDialect, steps: Iterable[Step]) -> bytes | Deferred:
        """Run ``steps`` on ``request`` on the clock."""
        return Executor(request, self._clock, steps, ex, dialect.timing_headers).run()

    def _validate(
        self, request: IRequest, raw: bytes, dialect: IDialect, ex: Exchange
    ) -> tuple[CompletionRequest, Caller, PlanPart]:
        """Check the body and the controls; raise :class:`APIError` for the first problem."""
        responses = self._config.responses
        lookup = ControlLookup(query_args(request.uri), request.requestHeaders)
        controls = parse_controls(lookup, responses.max_delay_ms, responses.timeout_ms / 1000)
        creq = dialect.parse(raw, parse_stream_flag(lookup("stream")))
        refusal = dialect.model_refusal(creq.model, creq.model in self._models)
        if refusal is not None:
            raise refusal
        if creq.stream and not responses.streaming_enabled:
            raise invalid_request("Streaming is disabled on this server.", "stream", "unsupported_value")
        caller = Caller(
            key=caller_key(lookup.header("key"), ex.identity, ex.client.rpartition(":")[0]),
            address=ex.client,
            identity=ex.identity,
            scenario=lookup.header("scenario"),
        )
        return creq, caller, controls
