"""
The legacy completions dialect: ``POST /v1/completions``, whole or streamed.

Parses ``prompt`` (a string, strings or token arrays) and the options the legacy API shares
with chat (``n``, ``max_tokens``, ``stop``, ``seed``; ``logprobs`` as an integer) into the
request model and renders a :class:`~mockllm.behaviour.reply.Reply` as a ``text_completion``
(every choice indexed, ``logprobs`` in the legacy ``tokens``/``token_logprobs``/
``top_logprobs``/``text_offset`` form) or as ``text_completion`` events: choice after choice its
content pieces and a finish event, the usage event when asked for, then ``data: [DONE]``.  There is no role event, so the first content piece waits the time to
first token.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from mockllm.behaviour.content import count_tokens
from mockllm.behaviour.reply import Choice, Reply, Stamp, TokenLogprob
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame
from mockllm.dialects.openai import (
    ChunkTemplate,
    OpenAIDialect,
    _check_common,
    _check_model,
    _wrong_type,
    dumps,
)
from mockllm.dialects.options import common_options, text_logprobs


def _prompt_texts(prompt: object) -> tuple[str, ...]:
    """The prompt's texts: a string, an array of strings, or one of tokens (counted as words)."""
    if prompt is None or isinstance(prompt, str):
        return (prompt or "",)
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return tuple(prompt)
    if isinstance(prompt, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        return (" ".join("x" for _ in prompt),)
    raise _wrong_type("prompt", "a string or an array of strings or tokens", prompt)


def _choice(index: int, text: str, finish_reason: str | None, logprobs: Any = None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}


def _logprobs(entries: tuple[TokenLogprob, ...] | None, offset: int) -> dict[str, Any] | None:
    """The legacy ``logprobs`` of ``entries``, whose text starts ``offset`` characters in."""
    if entries is None:
        return None
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": [entry.token for entry in entries],
        "token_logprobs": [entry.logprob for entry in entries],
        "top_logprobs": [{alt.token: alt.logprob for alt in entry.top} for entry in entries],
        "text_offset": offsets,
    }


def _content_events(template: ChunkTemplate, index: int, choice: Choice, offset: int) -> Iterator[Frame]:
    """The content events of a choice whose text starts ``offset`` characters in: each piece between
    bytes made once (the same bytes as a whole ``{"text", "index", "logprobs": null,
    "finish_reason": null}`` choice), or with its log probabilities when the request asks for them."""
    entries = choice.logprobs
    if entries is None:
        return template.pieces(b'{"text":', choice.pieces, b',"index":%d,"logprobs":null,"finish_reason":null}' % index)
    return _logprob_events(template, index, choice, offset)


def _logprob_events(template: ChunkTemplate, index: int, choice: Choice, offset: int) -> Iterator[Frame]:
    """The content events of a choice with the legacy log probabilities of each piece."""
    for at, piece in enumerate(choice.pieces):
        logprobs = _logprobs(choice.logprobs[at : at + 1], offset)
        yield Frame(template.event(dumps(_choice(index, piece, None, logprobs))))
        offset += len(piece)


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
        options = {**common_options(body), **text_logprobs(body)}
        return CompletionRequest("text", model, stream, include_usage, texts, body, prompt, **options)

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """A ``text_completion``."""
        start = len(request.last_text)
        choices = [_choice(i, c.text, c.finish_reason, _logprobs(c.logprobs, start)) for i, c in enumerate(reply.choices)]
        return self.whole(request, reply, stamp, "text_completion", dumps(choices))

    def frames(self, request: CompletionRequest, reply: Reply, template: ChunkTemplate) -> Iterator[Frame]:
        """Content pieces, then a finish event, for each choice (no lead frame)."""
        for index, choice in enumerate(reply.choices):
            yield from _content_events(template, index, choice, len(request.last_text))
            yield Frame(template.event(dumps(_choice(index, "", choice.finish_reason))))

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """A content event cut off half-way through its JSON."""
        return self.cut(dict(self.head(request, stamp), choices=[_choice(0, "...", None)]))
