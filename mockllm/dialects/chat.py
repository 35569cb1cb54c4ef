"""
The chat completions dialect: ``POST /v1/chat/completions``, whole or streamed.

Parses ``messages`` (roles, text or content parts) and the generation options
(:mod:`.options`) into the request model and renders a :class:`~mockllm.behaviour.reply.Reply`
as a ``chat.completion`` (every choice indexed, with its ``logprobs``) or as
``chat.completion.chunk`` events: a role event per choice (a lead frame; for a choice of tool
calls it also opens the first call), then choice after choice its content pieces (each with its
log probabilities) or its tool calls (an opening delta with ``index``, ``id``, ``type``, ``name``
and ``arguments: ""``, then argument fragments by ``index``) and its finish event, the usage event when ``stream_options.include_usage`` asks for
it, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

from mockllm.behaviour.content import prompt_tokens, tokenize
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.reply import Choice, Reply, Stamp, TokenLogprob, ToolCall
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame
from mockllm.config.model import EMBEDDING_DIMENSIONS
from mockllm.dialects.openai import (
    ROLES,
    ChunkTemplate,
    OpenAIDialect,
    _check_common,
    _check_model,
    _wrong_type,
    dumps,
    json_text,
    not_chat_model,
)
from mockllm.dialects.options import chat_options, common_options, option_tokens

#: How many argument tokens each streamed tool-call fragment carries.
FRAGMENT_TOKENS = 3


def _content_text(content: object, param: str) -> str:
    """The text of a message's ``content`` (a string, parts, or null)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise _wrong_type(f"{param}[{i}]", "an object", part)
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        return " ".join(texts)
    raise _wrong_type(param, "one of a string or array of objects", content)


def _message_texts(messages: object) -> tuple[str, ...]:
    if messages is None:
        raise invalid_request(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    texts = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _wrong_type(param, "an object", message)
        role = message.get("role")
        if role is None:
            raise invalid_request(
                f"Missing required parameter: '{param}.role'.", f"{param}.role", "missing_required_parameter"
            )
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            raise invalid_request(
                f"Invalid value: {json.dumps(role)}. Supported values are: {supported}.",
                f"{param}.role",
                "invalid_value",
            )
        texts.append(_content_text(message.get("content"), f"{param}.content"))
    return tuple(texts)


def _roles(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    """The role of each (already checked) message."""
    return tuple(message["role"] for message in messages)


def _alternative(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _token_logprob(entry: TokenLogprob) -> dict[str, Any]:
    """One ``logprobs.content`` entry: the token, its log probability, bytes and ``top_logprobs``."""
    top = [_alternative(alt.token, alt.logprob) for alt in entry.top]
    return dict(_alternative(entry.token, entry.logprob), top_logprobs=top)


def _logprobs(entries: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    """A choice's (or a chunk's) ``logprobs``: ``null`` unless the request asked for them."""
    if entries is None:
        return None
    return {"content": [_token_logprob(entry) for entry in entries], "refusal": None}


def fragments(arguments: str) -> list[str]:
    """A call's arguments split as a stream sends them: a few tokens a fragment."""
    pieces = tokenize(arguments)
    return ["".join(pieces[at : at + FRAGMENT_TOKENS]) for at in range(0, len(pieces), FRAGMENT_TOKENS)]


def _opening(number: int, call: ToolCall) -> dict[str, Any]:
    """The first delta of a streamed call: ``index``, ``id``, ``type``, ``name`` and ``arguments: ""``."""
    return {"index": number, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}


def _role_delta(choice: Choice) -> dict[str, Any]:
    """A choice's first delta: the role, and for a choice of calls alone ``content: null`` and the
    first call's opening, as the real API sends them together."""
    delta: dict[str, Any] = {"role": "assistant", "content": "" if choice.pieces or not choice.tool_calls else None}
    if choice.tool_calls and not choice.pieces:
        delta["tool_calls"] = [_opening(0, choice.tool_calls[0])]
    delta["refusal"] = None
    return delta


def _call_deltas(choice: Choice) -> Iterator[dict[str, Any]]:
    """The deltas of a choice's calls after its role delta: each call's opening (unless the role
    delta carried it), then its argument fragments by ``index``."""
    for number, call in enumerate(choice.tool_calls):
        if number or choice.pieces:
            yield {"tool_calls": [_opening(number, call)]}
        for fragment in fragments(call.arguments):
            yield {"tool_calls": [{"index": number, "function": {"arguments": fragment}}]}


def _chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """The JSON of one streamed choice: its ``index``, ``delta``, ``logprobs`` (null) and ``finish_reason``."""
    return dumps({"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason})


def _content_events(template: ChunkTemplate, index: int, choice: Choice) -> Iterator[Frame]:
    """The content events of a choice: each piece between bytes made once (the same bytes as a whole
    ``{"index", "delta": {"content"}, "logprobs": null, "finish_reason": null}`` choice), or with
    its log probabilities when the request asks for them."""
    entries = choice.logprobs
    if entries is None:
        opening = b'{"index":%d,"delta":{"content":' % index
        return template.pieces(opening, choice.pieces, b'},"logprobs":null,"finish_reason":null}')
    return (
        Frame(template.event(dumps(
            {"index": index, "delta": {"content": piece}, "logprobs": _logprobs(entries[at : at + 1]), "finish_reason": None}
        )))
        for at, piece in enumerate(choice.pieces)
    )


def _tool_calls(choice: Choice) -> list[dict[str, Any]]:
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in choice.tool_calls
    ]


def _message(choice: Choice) -> dict[str, Any]:
    """A choice's ``message``: its text, or ``content: null`` and its tool calls."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if choice.tool_calls and not choice.pieces else choice.text,
        "refusal": None,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = _tool_calls(choice)
    return message


def _choice_json(index: int, choice: Choice) -> bytes:
    """One choice of a ``chat.completion`` as JSON; a plain text reply (no tool calls, no log
    probabilities, the common case) is written around its text's JSON."""
    if choice.tool_calls or choice.logprobs is not None:
        return dumps({"index": index, "message": _message(choice), "logprobs": _logprobs(choice.logprobs),
                      "finish_reason": choice.finish_reason})
    return (
        b'{"index":%d,"message":{"role":"assistant","content":%s,"refusal":null,"annotations":[]},'
        b'"logprobs":null,"finish_reason":%s}'
    ) % (index, json_text(choice.text), json_text(choice.finish_reason))


class ChatCompletions(OpenAIDialect):
    """``/v1/chat/completions``."""

    kind = "chat"
    id_prefix = "chatcmpl-"
    chunk_object = "chat.completion.chunk"
    chunk_service_tier = True

    def parse_body(self, body: Mapping[str, Any], stream_override: bool | None) -> CompletionRequest:
        """Validate a chat body the way the real API does."""
        model = _check_model(body)
        texts = _message_texts(body.get("messages"))
        stream, include_usage = _check_common(body, stream_override)
        options = {**common_options(body), **chat_options(body, _roles(body["messages"]), texts)}
        prompt = prompt_tokens(list(texts)) + option_tokens(options)
        return CompletionRequest("chat", model, stream, include_usage, texts, body, prompt, **options)

    def model_refusal(self, model: str, served: bool) -> APIError | None:
        """An unknown model is a 404 ``model_not_found``; an embedding model the real 404 "not a chat model"."""
        if served and model in EMBEDDING_DIMENSIONS:
            return not_chat_model(model)
        return super().model_refusal(model, served)

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """A ``chat.completion``."""
        choices = b",".join(_choice_json(i, choice) for i, choice in enumerate(reply.choices))
        return self.whole(request, reply, stamp, "chat.completion", b"[" + choices + b"]")

    def frames(self, request: CompletionRequest, reply: Reply, template: ChunkTemplate) -> Iterator[Frame]:
        """Role events (lead frames), content and tool-call deltas, then each choice's finish event."""
        event = template.event
        for index, choice in enumerate(reply.choices):
            yield Frame(event(_chunk_choice(index, _role_delta(choice))), lead=True)
        for index, choice in enumerate(reply.choices):
            yield from _content_events(template, index, choice)
            for delta in _call_deltas(choice):
                yield Frame(event(_chunk_choice(index, delta)))
            yield Frame(event(_chunk_choice(index, {}, choice.finish_reason)))

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """A content chunk cut off half-way through its JSON."""
        choice = {"index": 0, "delta": {"content": "..."}, "logprobs": None, "finish_reason": None}
        return self.cut(dict(self.head(request, stamp), choices=[choice]))
