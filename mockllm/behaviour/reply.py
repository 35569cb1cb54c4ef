"""
The reply type: what the answer says, before any dialect renders it.

A :class:`Reply` has one or more :class:`Choice` objects, each with its text as token-sized
pieces (so a stream and ``usage`` agree), optional tool calls and a finish reason.  Today's
single text reply is :meth:`Reply.of_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mockllm.behaviour.content import tokenize


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asks for."""

    id: str
    name: str
    #: The arguments as a JSON string, as the wire carries them.
    arguments: str


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice: text pieces and/or tool calls, and why it ended."""

    #: The text as token-sized pieces (their concatenation is the text).
    pieces: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    #: ``"stop"``, ``"length"``, ``"tool_calls"``, ...
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        """The whole text."""
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class Reply:
    """Every choice of one answer."""

    choices: tuple[Choice, ...]

    @classmethod
    def of_text(cls, text: str) -> "Reply":
        """One choice of ``text`` that finishes with ``"stop"``."""
        return cls((Choice(tuple(tokenize(text))),))

    @property
    def completion_tokens(self) -> int:
        """``usage.completion_tokens``: the pieces of every choice."""
        return sum(len(choice.pieces) for choice in self.choices)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What every object of one answer shares: its id and creation time (whole seconds)."""

    id: str
    created: int
