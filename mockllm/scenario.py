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
)
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
from mockllm.dialects.openai import rate_limit_headers

__all__ = [
    "COMMON",
    "MAX_MS",
    "NO_FAULT",
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
    "NoFault",
    "Parameter",
    "Plan",
    "PlanPart",
    "Reply",
    "ResetFault",
    "ScenarioRunner",
    "ScenarioState",
    "StallFault",
    "StatusFault",
    "StreamTiming",
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
    "statuses",
    "text",
    "texts",
    "whole",
]
