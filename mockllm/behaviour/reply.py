"""
The reply type: what the answer says, before any dialect renders it.

A :class:`Reply` has one or more :class:`Choice` objects, each with its text as token-sized
pieces (so a stream and ``usage`` agree), optional tool calls, the log probabilities of its
pieces when the request asks for them (:class:`TokenLogprob`) and a finish reason.  A single
text reply is :meth:`Reply.of_text`; :mod:`mockllm.behaviour.compose` makes the rest.
"""

from __future__ import annotations

from mockllm.behaviour.content import count_tokens, tokenize
from mockllm.frozen import Frozen, frozen


@frozen
class ToolCall(Frozen):
    """One function call the model asks for."""

    id: str
    name: str
    #: The arguments as a JSON string, as the wire carries them.
    arguments: str

    @property
    def tokens(self) -> int:
        """The completion tokens the call costs: its arguments' (what a stream sends piece by piece)."""
        return count_tokens(self.arguments)


@frozen
class Alternative(Frozen):
    """A token the model might have chosen at one position, and its log probability."""

    token: str
    logprob: float


@frozen
class TokenLogprob(Frozen):
    """The log probability of one piece of a choice's text, and the likeliest tokens there."""

    token: str
    logprob: float
    #: The ``top_logprobs`` most likely tokens at this position, likeliest first.
    top: tuple[Alternative, ...] = ()


@frozen
class Choice(Frozen):
    """One choice: text pieces and/or tool calls, and why it ended."""

    #: The text as token-sized pieces (their concatenation is the text).
    pieces: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    #: ``"stop"``, ``"length"``, ``"tool_calls"``, ...
    finish_reason: str = "stop"
    #: One entry per piece when the request asks for ``logprobs``; ``None``: not asked for.
    logprobs: tuple[TokenLogprob, ...] | None = None

    @property
    def text(self) -> str:
        """The whole text."""
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        """The choice's completion tokens: its pieces and its tool calls."""
        return len(self.pieces) + sum(call.tokens for call in self.tool_calls)


@frozen
class Reply(Frozen):
    """Every choice of one answer."""

    choices: tuple[Choice, ...]

    @classmethod
    def of_text(cls, text: str) -> "Reply":
        """One choice of ``text`` that finishes with ``"stop"``."""
        return cls((Choice(tuple(tokenize(text))),))

    @property
    def completion_tokens(self) -> int:
        """``usage.completion_tokens``: the pieces and tool calls of every choice."""
        return sum(choice.tokens for choice in self.choices)


@frozen
class Stamp(Frozen):
    """What every object of one answer shares: its id and creation time (whole seconds)."""

    id: str
    created: int
