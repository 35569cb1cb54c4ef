"""
The request model: :class:`CompletionRequest`, what a dialect makes of a request body.

Everything after the dialect (scenarios, the plan, the engine) sees this model, never the
raw body's wire format; ``body`` is kept for scenarios that look at fields the model does
not name.  The generation options (``n``, ``max_tokens``, ``stop``, ``seed``, ``logprobs``,
tools, the output format) are named here once for every dialect: chat completions, the
legacy text completions, the Responses API and embeddings each fill what they have.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Mapping

from mockllm.frozen import Frozen, frozen

#: What ``tool_choice`` may be once parsed: let the model decide, force some call, forbid
#: calls, or force the one function named in ``forced_tool``.
TOOL_CHOICES = ("auto", "required", "none", "function")
#: What the answer's text must be: free text, any JSON object, or JSON valid against ``output_schema``.
OUTPUT_FORMATS = ("text", "json_object", "json_schema")


@frozen
class Tool(Frozen):
    """A function the client offers the model."""

    name: str
    description: str = ""
    #: The JSON Schema of the function's arguments (an object schema; ``{}`` when none is given).
    parameters: Mapping[str, Any] = field(default_factory=dict)
    strict: bool = False


@frozen
class CompletionRequest(Frozen):
    """A validated request in any dialect (chat, legacy text, responses, embeddings)."""

    #: ``"chat"``, ``"text"``, ``"responses"`` or ``"embeddings"``.
    kind: str
    model: str
    stream: bool
    include_usage: bool
    #: The text of each message (chat) or prompt (text), for token counting and topics.
    texts: tuple[str, ...]
    body: Mapping[str, Any]
    #: ``usage.prompt_tokens``, counted once (messages and tool definitions).
    prompt_tokens: int = 0
    #: How many choices to answer with.
    n: int = 1
    #: The most completion tokens a choice may have (``max_tokens``, ``max_completion_tokens``,
    #: ``max_output_tokens``); ``None``: no limit asked for.
    max_tokens: int | None = None
    #: Stop sequences: a choice's text ends before the first of them.
    stop: tuple[str, ...] = ()
    #: The request's ``seed``: the same seed gives the same choices.
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    tools: tuple[Tool, ...] = ()
    #: One of :data:`TOOL_CHOICES`.
    tool_choice: str = "auto"
    #: The function ``tool_choice`` names when it is ``"function"``.
    forced_tool: str | None = None
    parallel_tool_calls: bool = True
    #: One of :data:`OUTPUT_FORMATS`.
    output_format: str = "text"
    #: The JSON Schema of ``json_schema`` output (and its name).
    output_schema: Mapping[str, Any] | None = None
    output_schema_name: str | None = None
    #: The last message is a tool's result (``role: "tool"``, a ``function_call_output`` item):
    #: the answer is text about it.
    after_tool: bool = False

    @property
    def last_text(self) -> str:
        """The last message's (or prompt's) text, what a reply is about."""
        return self.texts[-1] if self.texts else ""
