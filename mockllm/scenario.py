"""
The public API for scenario authors: everything a scenario module imports, in one place.

A scenario provides :class:`IScenario` (see its docstring and ``docs/scenarios.md``) and
returns a :class:`PlanPart` from ``plan(request, caller, state)``.  The implementation
lives in private modules (:mod:`mockllm.behaviour`); names here stay stable.
"""

from mockllm.behaviour.caller import Caller
from mockllm.behaviour.content import count_tokens, draw_reply
from mockllm.behaviour.plan import (
    NO_FAULT,
    NO_OPINION,
    ChunkFault,
    CloseFault,
    ErrorEventFault,
    Fault,
    MalformedFault,
    NoFault,
    Plan,
    PlanPart,
    ResetFault,
    StallFault,
    StatusFault,
    StreamTiming,
    TimeoutFault,
    TimingPart,
)
from mockllm.behaviour.ratelimit import Meter, RateLimiter, Standing, request_tokens
from mockllm.behaviour.reply import Choice, Reply, ToolCall
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.scenarios import (
    COMMON,
    MAX_MS,
    SHADOWED,
    Definition,
    Discovery,
    IScenario,
    IScenarioControl,
    Parameter,
    ScenarioRunner,
    ScenarioState,
    UnknownScenario,
    define,
    discover,
    listing,
)
from mockllm.config.checks import boolean, decimal, milliseconds, optional, statuses, text, texts, whole
from mockllm.config.model import ModelLimits
from mockllm.dialects.openai import rate_limit_headers

__all__ = [
    "COMMON",
    "MAX_MS",
    "NO_FAULT",
    "NO_OPINION",
    "SHADOWED",
    "Caller",
    "Choice",
    "ChunkFault",
    "CloseFault",
    "CompletionRequest",
    "Definition",
    "Discovery",
    "ErrorEventFault",
    "Fault",
    "IScenario",
    "IScenarioControl",
    "MalformedFault",
    "Meter",
    "ModelLimits",
    "NoFault",
    "Parameter",
    "Plan",
    "PlanPart",
    "RateLimiter",
    "Reply",
    "ResetFault",
    "ScenarioRunner",
    "ScenarioState",
    "StallFault",
    "Standing",
    "StatusFault",
    "StreamTiming",
    "TimingPart",
    "TimeoutFault",
    "ToolCall",
    "UnknownScenario",
    "boolean",
    "count_tokens",
    "decimal",
    "define",
    "discover",
    "draw_reply",
    "listing",
    "milliseconds",
    "optional",
    "rate_limit_headers",
    "request_tokens",
    "statuses",
    "text",
    "texts",
    "whole",
]
