"""
Answering one completion request: body → dialect → plan → engine → executor.

:class:`Completions` reads the body (within ``max_body_bytes``), has the route's dialect
parse it, checks the model and streaming, identifies the caller, asks the scenario layer,
resolves the plan (request controls > response rule > scenario > configuration), and runs
the engine's script with an :class:`~mockllm.behaviour.executor.Executor`.  Every problem
before the plan is an error answer in the dialect's envelope.

Around that: the API key check (:mod:`.apikeys`) comes first, before the body is looked at;
a prompt over the model's context window is a 400; each request is charged to its key's
rate-limit buckets (:mod:`mockllm.behaviour.ratelimit`), and the answer's ``Head`` step
gets the ``x-ratelimit-*`` headers of that standing (the executor's ``defaults``: neither the
engine nor the executor knows of rate limits; a head that tells its own, a 429's, keeps them).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Callable, Iterable, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from mockllm.behaviour.caller import Caller, caller_key
from mockllm.behaviour.controls import ControlLookup, parse_controls, parse_stream_flag, query_args
from mockllm.behaviour.engine import Engine, error_script
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.executor import Executor
from mockllm.behaviour.plan import PlanPart, StreamTiming, fitting, latency_timing, merged_timing, resolve
from mockllm.behaviour.ratelimit import RateLimiter, completion_budget
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.rules import RuleBook
from mockllm.behaviour.steps import HeaderPairs, Step
from mockllm.behaviour.ticker import Scheduler, Ticker
from mockllm.config import Config
from mockllm.dialects import IDialect
from mockllm.dialects.openai import body_too_large, context_length_exceeded
from mockllm.http.apikeys import APIKeys, bearer_key
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


def config_layer(config: Config) -> Callable[[str], PlanPart]:
    """The configuration's layer of every plan, by model: the default delay and the stream pacing
    (``[responses] stream_interval_ms``, under the model's ``[models.latency."ID"]`` if it has one)."""
    responses = config.responses
    interval = responses.stream_interval_ms / 1000
    delay = responses.default_delay_ms / 1000
    pacing = StreamTiming(first_token=interval, inter_token=interval)
    default = PlanPart(delay=delay, timing=pacing)
    by_model = {
        model: PlanPart(delay=delay, timing=merged_timing(latency_timing(asdict(latency)), pacing))
        for model, latency in config.models.latency.items()
    }

    def layer(model: str) -> PlanPart:
        """``model``'s configuration layer."""
        return by_model.get(model, default)

    return layer


def check_context(request: CompletionRequest, window: int) -> None:
    """A 400 ``context_length_exceeded`` if the prompt, with the completion asked for, does not fit ``window``."""
    prompt, completion = request.prompt_tokens, completion_budget(request)
    if prompt + completion > window:
        raise context_length_exceeded(window, prompt, completion, request.kind)


class Completions:
    """Answers completion requests in any dialect."""

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        exchanges: Exchanges,
        engine: Engine,
        scenarios: ScenarioChooser,
        rate_limits: RateLimiter | None = None,
        rules: RuleBook | None = None,
        ticker: Scheduler | None = None,
    ) -> None:
        """``rate_limits``, ``rules``: shared with the admin API (default: the configuration's own);
        ``ticker``: what every answer waits on (default: one :class:`Ticker` over ``clock``)."""
        self._config = config
        self._clock = clock
        self._exchanges = exchanges
        self._engine = engine
        self._scenarios = scenarios
        self._models = frozenset(config.models.available)
        self._config_layer = config_layer(config)
        self._rate_limits = rate_limits if rate_limits is not None else RateLimiter(config.models.limits_of)
        self._rules = rules if rules is not None else RuleBook.of(config.rules, config.responses, exchanges.ids)
        self._api_keys = APIKeys(config.server.api_keys)
        self._ticker = ticker if ticker is not None else Ticker(clock)

    def refusal(self, request: IRequest) -> APIError | None:
        """The 401 if the request's API key may not pass (see :mod:`.apikeys`), else ``None``."""
        return self._api_keys.refusal(request)

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
            creq, caller, controls = self._validate(request, raw, dialect, ex)
            ex.key = caller.key
            ex.stream = creq.stream
            rule_part = self._rules.plan(creq, request.path.decode("utf-8", "replace"), _header_values(request))
            ex.scenario, scenario_part = self._scenarios.plan(creq, caller)
            standing = caller.meter.charge()
        except APIError as error:
            return self.fail(request, ex, dialect, error)
        plan = resolve(controls, rule_part, scenario_part, self._config_layer(creq.model))
        fault = fitting(plan.fault, creq.stream)  # a stream fault without a stream: none
        if fault is not plan.fault:
            plan = replace(plan, fault=fault)
        ex.fault, ex.fault_at = plan.fault_name, plan.fault_at
        return self.run(request, ex, dialect, self._engine.script(dialect, creq, plan), standing.limit_headers())

    def fail(self, request: IRequest, ex: Exchange, dialect: IDialect, error: APIError) -> bytes | Deferred:
        """Answer with ``error`` (recorded as the exchange's reason)."""
        ex.error = error.message
        return self.run(request, ex, dialect, error_script(dialect, error))

    def run(
        self, request: IRequest, ex: Exchange, dialect: IDialect, steps: Iterable[Step], defaults: HeaderPairs = ()
    ) -> bytes | Deferred:
        """Run ``steps`` on ``request`` on the ticker; the answer's head gets ``defaults`` unless it gives them itself."""
        return Executor(request, self._ticker, steps, ex, dialect.timing_headers, defaults).run()

    def _validate(
        self, request: IRequest, raw: bytes, dialect: IDialect, ex: Exchange
    ) -> tuple[CompletionRequest, Caller, PlanPart]:
        """Check the API key, the body and the controls; raise :class:`APIError` for the first problem."""
        refusal = self.refusal(request)
        if refusal is not None:
            raise refusal
        limit = self._config.server.max_body_bytes
        if len(raw) > limit:
            raise body_too_large(limit)
        responses = self._config.responses
        lookup = ControlLookup(query_args(request.uri), request.requestHeaders)
        controls = parse_controls(lookup, responses.max_delay_ms, responses.timeout_ms / 1000)
        creq = dialect.parse(raw, parse_stream_flag(lookup("stream")))
        refusal = dialect.model_refusal(creq.model, creq.model in self._models)
        if refusal is not None:
            raise refusal
        if creq.stream and not responses.streaming_enabled:
            raise invalid_request("Streaming is disabled on this server.", "stream", "unsupported_value")
        check_context(creq, self._config.models.limits_of(creq.model).context_window)
        key = caller_key(lookup.header("key"), ex.identity, ex.client.rpartition(":")[0], bearer_key(request))
        caller = Caller(
            key=key,
            address=ex.client,
            identity=ex.identity,
            scenario=lookup.header("scenario"),
            meter=self._rate_limits.meter(key, creq, self._clock.seconds()),
        )
        return creq, caller, controls


def _header_values(request: IRequest) -> Callable[[str], list[str]]:
    """``header(name)``: the request's values of header ``name``, as text."""

    def header(name: str) -> list[str]:
        values = request.requestHeaders.getRawHeaders(name.encode("latin-1", "replace"), [])
        return [value.decode("utf-8", "replace") for value in values]

    return header
