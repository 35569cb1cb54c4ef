"""
The Responses API dialect: ``POST /v1/responses``, whole or streamed.

Parses ``input`` (a string, or a list of items: messages with text content parts,
``function_call`` and ``function_call_output``), ``instructions``, flat function ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``max_output_tokens``, ``text.format`` and ``stream``
into the request model, and renders a :class:`~mockllm.behaviour.reply.Reply`'s first choice as
a ``response`` object whose ``output`` holds a ``message`` item (one ``output_text`` part) and/or
``function_call`` items.  A choice cut at its token limit (``finish_reason: "length"``) is
``status: "incomplete"`` with ``incomplete_details.reason: "max_output_tokens"``.

A stream is named events (``event: <type>`` then ``data: <json>``), each with a
``sequence_number`` counting from 0, and no ``[DONE]``: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, its content
(``response.content_part.added``, ``response.output_text.delta`` per token,
``response.output_text.done``, ``response.content_part.done``; or
``response.function_call_arguments.delta`` per token and ``.done``), ``response.output_item.done``,
and last ``response.completed`` (``response.incomplete`` when cut).  The events before the first
token are lead frames, sent at once.  Item ids (``msg_``, ``fc_``) are derived from the response
id, so the whole answer and every event of it agree.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any, Callable, Iterable, Iterator, Mapping

from mockllm.behaviour.content import prompt_tokens, tokenize
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.reply import Choice, Reply, Stamp
from mockllm.behaviour.request import CompletionRequest, Tool
from mockllm.behaviour.steps import Frame
from mockllm.config.model import EMBEDDING_DIMENSIONS
from mockllm.dialects.openai import OpenAIDialect, _check_common, _check_model, _check_range, _wrong_type, dumps, json_text
from mockllm.dialects.options import MAX_TOOLS, _bad_value, _boolean, _missing, _name, _object, _too_long, WIRE_TOOL_CHOICES, format_kind, tool_tokens

INPUT_ROLES = ("user", "assistant", "system", "developer")
#: ``text.format`` types (the request model's output formats).
#: The ``code`` values a failed response's ``error`` may carry (others are reported as ``server_error``).
RESPONSE_ERROR_CODES = ("server_error", "rate_limit_exceeded", "invalid_prompt")
_MIN_OUTPUT_TOKENS = 16


# --- the request ------------------------------------------------------------------------------


def _parts_text(content: object, param: str) -> str:
    """The text of a message's ``content``: a string, or parts whose ``text`` is joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _wrong_type(param, "one of a string or array of input content parts", content)
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise _wrong_type(f"{param}[{i}]", "an object", part)
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
    return " ".join(texts)


def _required_string(item: Mapping[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if value is None:
        raise _missing(f"{param}.{key}")
    if not isinstance(value, str):
        raise _wrong_type(f"{param}.{key}", "a string", value)
    return value


def _item_text(item: Mapping[str, Any], param: str) -> str | None:
    """The text one input item contributes (``None``: an item type with no text, such as ``reasoning``)."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise _missing(f"{param}.role")
        if role not in INPUT_ROLES:
            raise _bad_value(role, f"{param}.role", INPUT_ROLES)
        if "content" not in item:
            raise _missing(f"{param}.content")
        return _parts_text(item["content"], f"{param}.content")
    if kind == "function_call":
        _required_string(item, "call_id", param)
        _required_string(item, "name", param)
        return _required_string(item, "arguments", param)
    if kind == "function_call_output":
        _required_string(item, "call_id", param)
        if "output" not in item:
            raise _missing(f"{param}.output")
        return _parts_text(item["output"], f"{param}.output")
    return None


def parse_input(value: object) -> tuple[tuple[str, ...], bool]:
    """The texts of ``input`` and whether its last item is a ``function_call_output``."""
    if value is None:
        raise _missing("input")
    if isinstance(value, str):
        return (value,), False
    if not isinstance(value, list):
        raise _wrong_type("input", "one of a string or array of input items", value)
    texts = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _wrong_type(f"input[{i}]", "an object", item)
        text = _item_text(item, f"input[{i}]")
        if text is not None:
            texts.append(text)
    after_tool = bool(value) and isinstance(value[-1], dict) and value[-1].get("type") == "function_call_output"
    return tuple(texts), after_tool


def parse_tools(value: object) -> tuple[Tool, ...]:
    """The function tools of ``tools`` (flat: ``{type, name, description, parameters, strict}``);
    other tool types (built-in ones) are accepted and offer no function."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _wrong_type("tools", "an array", value)
    if len(value) > MAX_TOOLS:
        raise _too_long("tools", MAX_TOOLS, len(value))
    tools = (_function(_object(tool, f"tools[{i}]"), f"tools[{i}]") for i, tool in enumerate(value))
    return tuple(tool for tool in tools if tool is not None)


def _function(tool: Mapping[str, Any], param: str) -> Tool | None:
    """A flat function tool (``strict`` is true unless it says otherwise); ``None`` for another type."""
    if _required_string(tool, "type", param) != "function":
        return None
    name = _name(tool.get("name"), f"{param}.name")
    description = tool.get("description") or ""
    if not isinstance(description, str):
        raise _wrong_type(f"{param}.description", "a string", description)
    parameters = _object(tool.get("parameters") or {}, f"{param}.parameters")
    strict = _boolean(tool, "strict", True) if tool.get("strict") is not None else True
    return Tool(name, description, parameters, strict)


def parse_tool_choice(value: object, tools: tuple[Tool, ...]) -> tuple[str, str | None]:
    """``(tool_choice, forced_tool)`` of the request model from ``tool_choice``."""
    if value is None:
        return "auto", None
    if isinstance(value, str):
        if value not in WIRE_TOOL_CHOICES:
            raise _bad_value(value, "tool_choice", WIRE_TOOL_CHOICES)
        return value, None
    if not isinstance(value, dict):
        raise _wrong_type("tool_choice", "one of a string or object", value)
    if value.get("type") != "function":
        return "auto", None  # a built-in tool or an allowed-tools list: no function is forced
    name = _required_string(value, "name", "tool_choice")
    if name not in {tool.name for tool in tools}:
        raise invalid_request("Tool choice 'function' not found in 'tools' parameter.", "tool_choice", None)
    return "function", name


def _output_format(body: Mapping[str, Any], texts: tuple[str, ...]) -> dict[str, Any]:
    """``output_format``, ``output_schema`` and ``output_schema_name`` of ``text.format``."""
    text = body.get("text")
    if text is None:
        return {}
    fmt = _object(_object(text, "text").get("format") or {"type": "text"}, "text.format")
    kind = fmt.get("type")
    no_json = "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'."
    if format_kind(kind, "text.format.type", texts, no_json, "input") != "json_schema":
        return {"output_format": kind}
    schema = fmt.get("schema")
    if schema is None:
        raise _missing("text.format.schema")
    schema = _object(schema, "text.format.schema")
    return {"output_format": kind, "output_schema": schema, "output_schema_name": _name(fmt.get("name"), "text.format.name")}


def _instructions(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("instructions")
    if value is None:
        return ()
    if not isinstance(value, str):
        raise _wrong_type("instructions", "a string", value)
    return (value,)


# --- the response -----------------------------------------------------------------------------


def item_id(prefix: str, stamp: Stamp, index: int) -> str:
    """The id of output item ``index`` of the response ``stamp``: ``prefix``, 32 hex digits of a
    hash, and the response id's last 16 (the real API's items share that tail with their response)."""
    digest = hashlib.sha256(f"{stamp.id}/{index}".encode("ascii")).hexdigest()
    return prefix + digest[:32] + stamp.id[-16:]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(stamp: Stamp, index: int, status: str, content: list) -> dict[str, Any]:
    return {"id": item_id("msg_", stamp, index), "type": "message", "status": status, "content": content, "role": "assistant"}


def _call(stamp: Stamp, index: int, status: str, call: Any, arguments: str) -> dict[str, Any]:
    return {"id": item_id("fc_", stamp, index), "type": "function_call", "status": status,
            "arguments": arguments, "call_id": call.id, "name": call.name}


def _items(choice: Choice) -> list[tuple[str, Any]]:
    """The output items of a choice, in order: its text (if any, or if it has no call), then each call."""
    items: list[tuple[str, Any]] = []
    if choice.pieces or not choice.tool_calls:
        items.append(("message", choice))
    items.extend(("function_call", call) for call in choice.tool_calls)
    return items


def _status(choice: Choice) -> str:
    return "incomplete" if choice.finish_reason == "length" else "completed"


def _done_items(choice: Choice, stamp: Stamp) -> list[dict[str, Any]]:
    """The finished output items of ``choice``."""
    status = _status(choice)
    done = []
    for index, (kind, what) in enumerate(_items(choice)):
        if kind == "message":
            done.append(_message(stamp, index, status, [_text_part(choice.text)]))
        else:
            done.append(_call(stamp, index, "completed", what, what.arguments))
    return done


def _echo_tool(tool: Any) -> Any:
    """A tool as the response echoes it: function tools with every key, others as sent."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict", True) is not False}


def response_usage(request: CompletionRequest, output_tokens: int) -> dict[str, Any]:
    """A response's ``usage``."""
    prompt = request.prompt_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output_tokens,
    }


def response_object(
    request: CompletionRequest, stamp: Stamp, status: str, output: list, usage: Any = None, error: Any = None
) -> dict[str, Any]:
    """The ``response`` object: its state, ``output`` and ``usage``, the request's settings echoed."""
    body = request.body
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "id": stamp.id,
        "object": "response",
        "created_at": stamp.created,
        "status": status,
        "background": False,
        "completed_at": stamp.created if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [_echo_tool(tool) for tool in body.get("tools") or ()],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "metadata": body.get("metadata") or {},
        **({"user": body["user"]} if isinstance(body.get("user"), str) else {}),
    }


def named_event(kind: str, fields: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: kind`` and its JSON (``type`` first) on a ``data:`` line."""
    return b"event: " + kind.encode("ascii") + b"\ndata: " + dumps({"type": kind, **fields}) + b"\n\n"


def delta_events(
    kind: str, at: Mapping[str, Any], pieces: Iterable[str], numbers: Iterator[int], tail: bytes = b""
) -> Iterator[Frame]:
    """The delta events of one item, one per piece: the bytes of ``named_event(kind, {**at, "delta":
    piece, ..., "sequence_number": n})``, where ``tail`` holds the JSON of the fields between
    ``delta`` and ``sequence_number``; all but the piece and its number are encoded once."""
    opening = b"event: " + kind.encode("ascii") + b"\ndata: " + dumps({"type": kind, **at})[:-1] + b',"delta":'
    closing = tail + b',"sequence_number":%d}\n\n'
    for piece in pieces:
        yield Frame(opening + json_text(piece) + closing % next(numbers))


class Responses(OpenAIDialect):
    """``/v1/responses``."""

    kind = "responses"

    def parse_body(self, body: Mapping[str, Any], stream_override: bool | None) -> CompletionRequest:
        """Validate a Responses API body the way the real API does."""
        model = _check_model(body)
        texts, after_tool = parse_input(body.get("input"))
        texts = _instructions(body) + texts
        stream, _ = _check_common({k: body.get(k) for k in ("stream", "temperature", "top_p")}, stream_override)
        _check_range(body, "max_output_tokens", _MIN_OUTPUT_TOKENS, 1_000_000, integer=True)
        tools = parse_tools(body.get("tools"))
        tool_choice, forced = parse_tool_choice(body.get("tool_choice"), tools)
        return CompletionRequest(
            "responses", model, stream, False, texts, body, prompt_tokens(list(texts)) + tool_tokens(tools),
            max_tokens=body.get("max_output_tokens"), tools=tools, tool_choice=tool_choice, forced_tool=forced,
            parallel_tool_calls=_boolean(body, "parallel_tool_calls", True), after_tool=after_tool,
            **_output_format(body, texts),
        )

    def model_refusal(self, model: str, served: bool) -> APIError | None:
        """The Responses API's own 400s: an unknown model "does not exist", an embedding model "was not found"."""
        if not served:
            return invalid_request(f"The requested model '{model}' does not exist.", "model", "model_not_found")
        if model in EMBEDDING_DIMENSIONS:
            return invalid_request(f"The requested model, '{model}' was not found.", "model", "model_not_found")
        return None

    def new_id(self, ids: random.Random) -> str:
        """A fresh response id: ``resp_`` and 48 hex digits."""
        return "resp_%048x" % ids.getrandbits(192)

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """The whole ``response`` of the reply's first choice."""
        choice = reply.choices[0]
        usage = response_usage(request, reply.completion_tokens)
        return dumps(response_object(request, stamp, _status(choice), _done_items(choice, stamp), usage))

    def stream(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> Iterator[Frame]:
        """The named events of the answer, numbered from 0 (see the module's docstring)."""
        numbers = itertools.count()

        def event(kind: str, lead: bool = False, **fields: Any) -> Frame:
            return Frame(named_event(kind, dict(fields, sequence_number=next(numbers))), lead)

        shell = response_object(request, stamp, "in_progress", [])
        yield event("response.created", True, response=shell)
        yield event("response.in_progress", True, response=shell)
        choice = reply.choices[0]
        for index, (kind, what) in enumerate(_items(choice)):
            item = (self._message_events if kind == "message" else self._call_events)
            yield from item(event, numbers, stamp, index, choice, what)
        final = response_object(request, stamp, _status(choice), _done_items(choice, stamp),
                                response_usage(request, reply.completion_tokens))
        yield event("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)

    @staticmethod
    def _message_events(
        event: Callable[..., Frame], numbers: Iterator[int], stamp: Stamp, index: int, choice: Choice, _: Any
    ) -> Iterator[Frame]:
        """A message item: added, its part added, a delta per piece, the text and part done, the item done."""
        status = _status(choice)
        at = {"item_id": item_id("msg_", stamp, index), "output_index": index, "content_index": 0}
        yield event("response.output_item.added", True, output_index=index, item=_message(stamp, index, "in_progress", []))
        yield event("response.content_part.added", True, **at, part=_text_part(""))
        yield from delta_events("response.output_text.delta", at, choice.pieces, numbers, b',"logprobs":[]')
        yield event("response.output_text.done", **at, text=choice.text, logprobs=[])
        yield event("response.content_part.done", **at, part=_text_part(choice.text))
        yield event("response.output_item.done", output_index=index, item=_message(stamp, index, status, [_text_part(choice.text)]))

    @staticmethod
    def _call_events(
        event: Callable[..., Frame], numbers: Iterator[int], stamp: Stamp, index: int, choice: Choice, call: Any
    ) -> Iterator[Frame]:
        """A function call item: added with empty arguments, an arguments delta per token, done, the item done."""
        at = {"item_id": item_id("fc_", stamp, index), "output_index": index}
        yield event("response.output_item.added", True, output_index=index, item=_call(stamp, index, "in_progress", call, ""))
        yield from delta_events("response.function_call_arguments.delta", at, tokenize(call.arguments), numbers)
        yield event("response.function_call_arguments.done", **at, name=call.name, arguments=call.arguments)
        yield event("response.output_item.done", output_index=index, item=_call(stamp, index, "completed", call, call.arguments))

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """A text delta event whose JSON is cut off half-way."""
        whole = dumps({"type": "response.output_text.delta", "item_id": item_id("msg_", stamp, 0), "output_index": 0,
                       "content_index": 0, "delta": "...", "logprobs": [], "sequence_number": 4})
        return b"event: response.output_text.delta\ndata: " + whole[: len(whole) // 2] + b"\n\n"

    def stream_error(self, request: CompletionRequest, stamp: Stamp, error: APIError, sent: int = 0) -> bytes:
        """An ``error`` event for ``error``, then ``response.failed`` carrying it, numbered on from
        ``sent`` (the events the stream has already sent)."""
        failed_error = {"code": error.code if error.code in RESPONSE_ERROR_CODES else "server_error", "message": error.message}
        failed = response_object(request, stamp, "failed", [], None, failed_error)
        return named_event(
            "error", {"code": error.code, "message": error.message, "param": error.param, "sequence_number": sent}
        ) + named_event("response.failed", {"response": failed, "sequence_number": sent + 1})
