"""
The request model: :class:`CompletionRequest`, what a dialect makes of a request body.

Everything after the dialect (scenarios, the plan, the engine) sees this model, never the
raw body's wire format; ``body`` is kept for scenarios that look at fields the model does
not name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated completion request, chat or legacy text."""

    #: ``"chat"`` or ``"text"``.
    kind: str
    model: str
    stream: bool
    include_usage: bool
    #: The text of each message (chat) or prompt (text), for token counting and topics.
    texts: tuple[str, ...]
    body: Mapping[str, Any]
    #: ``usage.prompt_tokens``, counted once.
    prompt_tokens: int = 0

    @property
    def last_text(self) -> str:
        """The last message's (or prompt's) text, what a reply is about."""
        return self.texts[-1] if self.texts else ""
