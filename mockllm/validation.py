"""
Request validation, stated once for every route.

:func:`parse_json_object` reads a body, :func:`parse_chat` and
:func:`parse_text` check a completion request the way the real API does, and
:func:`parse_controls` reads the seed's failure controls from the query
string or ``X-Mock-*`` headers.  Every problem raises an
:class:`~mockllm.errors.APIError` (400, ``invalid_request_error``) whose
``param`` names the offending field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from mockllm.content import count_tokens, prompt_tokens
from mockllm.errors import APIError, invalid_request, rate_limit_headers
from mockllm.plan import NO_FAULT, ChunkFault, Fault, PlanPart, StatusFault, TimeoutFault

ROLES = ("system", "user", "assistant", "tool", "function", "developer")

_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you "
    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
    "but what was sent was not valid JSON.)"
)

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a decimal",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


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


def _type_name(value: object) -> str:
    """How the real API names the JSON type of ``value`` in its messages."""
    return _TYPE_NAMES.get(type(value), "an unsupported value")


def _wrong_type(param: str, expected: str, value: object) -> APIError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param,
        "invalid_type",
    )


def _no_constants(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON; the real API refuses them."""
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object, or raise the real API's 400."""
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid_request(_JSON_HINT) from None
    if not isinstance(body, dict):
        raise invalid_request(
            f"Invalid type for request body: expected an object, but got {_type_name(body)} instead.",
            None,
            "invalid_type",
        )
    return body


def _check_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid_request("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _wrong_type("model", "a non-empty string", model)
    return model


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(body: Mapping[str, Any], param: str, low: float, high: float, integer: bool) -> None:
    value = body.get(param)
    if value is None:
        return
    if integer and (not isinstance(value, int) or isinstance(value, bool)):
        raise _wrong_type(param, "an integer", value)
    if not _is_number(value):
        raise _wrong_type(param, "a number", value)
    if value < low:
        raise invalid_request(
            f"Invalid '{param}': value below minimum. Expected a value >= {low}, but got {value} instead.",
            param,
            "below_min_value",
        )
    if value > high:
        raise invalid_request(
            f"Invalid '{param}': value above maximum. Expected a value <= {high}, but got {value} instead.",
            param,
            "above_max_value",
        )


def _check_common(body: Mapping[str, Any], stream_override: bool | None) -> tuple[bool, bool]:
    """Check the fields chat and text completions share; return ``(stream, include_usage)``.

    ``stream_override`` (the seed's ``?stream=``) replaces the body's ``stream`` once that is checked.
    """
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    if stream_override is not None:
        stream = stream_override
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _wrong_type("stream_options", "an object", options)
        if not stream:
            raise invalid_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
            )
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _wrong_type("stream_options.include_usage", "a boolean", include_usage)
    _check_range(body, "temperature", 0, 2, integer=False)
    _check_range(body, "top_p", 0, 1, integer=False)
    _check_range(body, "n", 1, 128, integer=True)
    _check_range(body, "max_tokens", 1, 1_000_000, integer=True)
    _check_range(body, "max_completion_tokens", 1, 1_000_000, integer=True)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _wrong_type("stop", "a string or an array of strings", stop)
    return stream, include_usage


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


def parse_chat(body: Mapping[str, Any], stream_override: bool | None = None) -> CompletionRequest:
    """Validate a ``/v1/chat/completions`` body (``stream_override``: the query's ``stream``)."""
    model = _check_model(body)
    texts = _message_texts(body.get("messages"))
    stream, include_usage = _check_common(body, stream_override)
    return CompletionRequest("chat", model, stream, include_usage, texts, body, prompt_tokens(list(texts)))


def parse_text(body: Mapping[str, Any], stream_override: bool | None = None) -> CompletionRequest:
    """Validate a legacy ``/v1/completions`` body (``prompt``: strings or tokens; ``stream_override``: the
    query's ``stream``)."""
    model = _check_model(body)
    prompt = body.get("prompt", "")
    if prompt is None:
        prompt = ""
    if isinstance(prompt, str):
        texts: tuple[str, ...] = (prompt,)
    elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        texts = tuple(prompt)
    elif isinstance(prompt, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        texts = (" ".join("x" for _ in prompt),)
    else:
        raise _wrong_type("prompt", "a string or an array of strings or tokens", prompt)
    stream, include_usage = _check_common(body, stream_override)
    prompt = sum(count_tokens(text) for text in texts)
    return CompletionRequest("text", model, stream, include_usage, texts, body, prompt)


# --- the seed's failure controls -------------------------------------------

Lookup = Callable[[str], "str | None"]

def ascii_whole(text: str, max_digits: int) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits, else ``None``.

    ``str.isdigit`` alone also accepts characters such as ``"²"`` that ``int()`` refuses,
    and ``int()`` refuses (or is slow on) thousands of digits.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def query_args(uri: bytes) -> dict[str, list[str]]:
    """The query string of ``uri`` only (never a form-encoded body, which ``request.args`` mixes in)."""
    query = uri.partition(b"?")[2]
    if not query:
        return {}
    return parse_qs(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")


def control_lookup(query: Mapping[str, list[str]], headers: Any) -> Lookup:
    """A function that finds a control by name: the query string first, then ``X-Mock-<Name>``.

    The ``X-Mock-*`` headers are collected in one pass over the request's headers.
    """
    found = {}
    for raw_name, values in headers.getAllRawHeaders():
        name = raw_name.lower()
        if name.startswith(b"x-mock-"):
            found[name[7:].decode("latin-1").replace("-", "_")] = values[-1].decode("utf-8", "replace")

    def lookup(name: str) -> str | None:
        values = query.get(name)
        if values:
            return values[-1]
        return found.get(name)

    return lookup


def _whole_ms(name: str, text: str, cap: int) -> int:
    """``text`` as whole milliseconds from 0 to ``cap``, or a 400 naming ``name``."""
    text = text.strip()
    value = ascii_whole(text.removeprefix("-"), 15)
    if value is None:
        raise invalid_request(
            f"Invalid '{name}': expected a whole number of milliseconds, got {text!r}.", name, "invalid_value"
        )
    if text.startswith("-") and value:
        raise invalid_request(f"Invalid '{name}': must not be negative, got -{value}.", name, "invalid_value")
    if value > cap:
        raise invalid_request(
            f"Invalid '{name}': {value} ms is above this server's cap of {cap} ms.", name, "invalid_value"
        )
    return value


def parse_fail(text: str, timeout_s: float) -> Fault:
    """Turn a ``fail`` value into a fault: an HTTP status 400-599, ``timeout`` or ``none``."""
    lowered = text.strip().lower()
    if lowered == "timeout":
        return TimeoutFault(timeout_s)
    if lowered == "none":
        return NO_FAULT
    status = ascii_whole(lowered, 3)
    if status is not None and 400 <= status <= 599:
        return StatusFault(status)
    raise invalid_request(
        f"Unknown fail type: {text!r}. Use an HTTP status from 400 to 599, 'timeout' or 'none'.",
        "fail",
        "invalid_value",
    )


def _parse_fail_chunk(text: str) -> ChunkFault:
    chunk = ascii_whole(text.strip(), 9)
    if chunk is None or chunk < 1:
        raise invalid_request(
            f"Invalid 'fail_chunk': expected an event number of 1 or more, got {text!r}.",
            "fail_chunk",
            "invalid_value",
        )
    return ChunkFault(chunk)


def parse_stream_flag(text: str | None) -> bool | None:
    """The query's ``stream=true|false`` (also ``1``/``0``); ``None`` when absent."""
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid_request(f"Invalid 'stream': expected true or false, got {text!r}.", "stream", "invalid_value")


def _request_fault(lookup: Lookup, max_delay_ms: int, timeout_s: float) -> Fault | None:
    """The fault the request asks for itself: ``fail`` (with ``retry_after``), else ``fail_chunk``."""
    fail_text, chunk_text, retry_text = lookup("fail"), lookup("fail_chunk"), lookup("retry_after")
    fault = None if fail_text is None else parse_fail(fail_text, timeout_s)
    retry_ms = None if retry_text is None else _whole_ms("retry_after", retry_text, max_delay_ms)
    if chunk_text is not None:
        chunk_fault = _parse_fail_chunk(chunk_text)
        if fault is None or fault is NO_FAULT:  # fail=none masks the scenario's fault, not this one
            fault = chunk_fault
    if retry_ms is not None and isinstance(fault, StatusFault):
        fault = replace(fault, headers=rate_limit_headers(retry_ms / 1000))
    return fault


def parse_controls(lookup: Lookup, max_delay_ms: int, timeout_s: float) -> PlanPart:
    """The request's own plan layer from ``delay``, ``fail``, ``fail_chunk`` and ``retry_after``."""
    delay_text = lookup("delay")
    delay = None if delay_text is None else _whole_ms("delay", delay_text, max_delay_ms) / 1000
    return PlanPart(delay=delay, fault=_request_fault(lookup, max_delay_ms, timeout_s))
