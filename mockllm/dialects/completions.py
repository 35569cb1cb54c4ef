"""
The legacy completions dialect: ``POST /v1/completions``, whole or streamed.

Parses ``prompt`` (a string, strings or token arrays) into the request model and renders a
:class:`~mockllm.behaviour.reply.Reply` as a ``text_completion`` or as ``text_completion``
events: content pieces, a finish event, the usage event when asked for, then
``data: [DONE]``.  There is no role event, so the first content piece waits the time to
first token.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from mockllm.behaviour.content import count_tokens
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame
from mockllm.dialects.openai import OpenAIDialect, _check_common, _check_model, _wrong_type


def _prompt_texts(prompt: object) -> tuple[str, ...]:
    """The prompt's texts: a string, an array of strings, or one of tokens (counted as words)."""
    if prompt is None or isinstance(prompt, str):
        return (prompt or "",)
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return tuple(prompt)
    if isinstance(prompt, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        return (" ".join("x" for _ in prompt),)
    raise _wrong_type("prompt", "a string or an array of strings or tokens", prompt)


def _choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


class TextCompletions(OpenAIDialect):
    """``/v1/completions``."""

    kind = "text"
    id_prefix = "cmpl-"
    chunk_object = "text_completion"

    def parse_body(self, body: Mapping[str, Any], stream_override: bool | None) -> CompletionRequest:
        """Validate a legacy completions body the way the real API does."""
        model = _check_model(body)
        texts = _prompt_texts(body.get("prompt", ""))
        stream, include_usage = _check_common(body, stream_override)
        prompt = sum(count_tokens(text) for text in texts)
        return CompletionRequest("text", model, stream, include_usage, texts, body, prompt)

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """A ``text_completion``."""
        choices = [_choice(i, c.text, c.finish_reason) for i, c in enumerate(reply.choices)]
        return self.whole(request, reply, stamp, "text_completion", choices)

    def frames(self, request: CompletionRequest, reply: Reply, head: dict[str, Any]) -> Iterator[Frame]:
        """Content pieces, then a finish event, for each choice (no lead frame)."""
        for index, choice in enumerate(reply.choices):
            for piece in choice.pieces:
                yield Frame(self.chunk(request, head, [_choice(index, piece, None)]))
            yield Frame(self.chunk(request, head, [_choice(index, "", choice.finish_reason)]))

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """A content event cut off half-way through its JSON."""
        return self.cut(dict(self.head(request, stamp), choices=[_choice(0, "...", None)]))
