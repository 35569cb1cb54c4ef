"""
The generation options of chat and legacy text completions, checked the way the real API checks
them and turned into the request model's fields.

:func:`common_options` reads what both have (``n``, ``max_tokens``/``max_completion_tokens``,
``stop``, ``seed``); :func:`chat_options` adds chat's ``logprobs``/``top_logprobs``, ``tools``,
``tool_choice``, ``parallel_tool_calls`` and ``response_format``; :func:`text_logprobs` reads the
legacy API's integer ``logprobs``.  Each returns keyword arguments of
:class:`~mockllm.behaviour.request.CompletionRequest`; a bad value raises the real API's 400.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from mockllm.behaviour.content import count_tokens
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.request import OUTPUT_FORMATS, Tool
from mockllm.dialects.openai import _check_range, _wrong_type

#: At most this many stop sequences, tools.
MAX_STOP = 4
MAX_TOOLS = 128
#: How deep strict schemas are checked (keys of the path into the schema).
MAX_CONTEXT = 100
#: What a function's (and a ``json_schema``'s) name may be.
NAME_PATTERN = "^[a-zA-Z0-9_-]+$"
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: The string values of ``tool_choice`` on the wire (chat and the Responses API), in the order errors list them.
WIRE_TOOL_CHOICES = ("none", "auto", "required")


def _missing(param: str) -> APIError:
    return invalid_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _bad_value(value: object, param: str, supported: tuple[str, ...]) -> APIError:
    listed = ", ".join(f"'{s}'" for s in supported[:-1]) + f", and '{supported[-1]}'" if len(supported) > 1 else f"'{supported[0]}'"
    return invalid_request(f"Invalid value: {json.dumps(value)}. Supported values are: {listed}.", param, "invalid_value")


def _too_long(param: str, limit: int, length: int) -> APIError:
    return invalid_request(
        f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, "
        f"but got an array with length {length} instead.",
        param,
        "array_above_max_length",
    )


def _boolean(body: Mapping[str, Any], param: str, default: bool) -> bool:
    """A boolean field; absent is ``default``, an explicit ``null`` is the real API's type error."""
    if param not in body:
        return default
    value = body[param]
    if not isinstance(value, bool):
        raise _wrong_type(param, "a boolean", value)
    return value


def _object(value: object, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    return value


def _name(value: object, param: str) -> str:
    if value is None:
        raise _missing(param)
    if not isinstance(value, str):
        raise _wrong_type(param, "a string", value)
    if not _NAME.fullmatch(value):
        raise invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
            f"pattern '{NAME_PATTERN}'.",
            param,
            "invalid_value",
        )
    return value


def common_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """``n``, ``max_tokens`` (``max_completion_tokens`` wins), ``stop`` and ``seed``.

    Types and ranges of ``n`` and the token limits are already checked by ``_check_common``.
    """
    _check_range(body, "seed", -(2**63), 2**63 - 1, integer=True)
    limit = body.get("max_completion_tokens")
    return {
        "n": body.get("n") or 1,
        "max_tokens": limit if limit is not None else body.get("max_tokens"),
        "stop": _stop(body.get("stop")),
        "seed": body.get("seed"),
    }


def _stop(stop: object) -> tuple[str, ...]:
    """The stop sequences: a string or up to :data:`MAX_STOP` strings (types checked before)."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if len(stop) > MAX_STOP:
        raise _too_long("stop", MAX_STOP, len(stop))
    return tuple(s for s in stop if s)


def chat_options(body: Mapping[str, Any], roles: tuple[str, ...], texts: tuple[str, ...]) -> dict[str, Any]:
    """Chat's options: log probabilities, tools and the response format (``roles``/``texts`` are
    the messages', for ``after_tool`` and the ``json_object`` check)."""
    tools = _tools(body.get("tools"))
    choice, forced = _tool_choice(body.get("tool_choice"), tools)
    return {
        **_logprobs(body),
        "tools": tools,
        "tool_choice": choice,
        "forced_tool": forced,
        "parallel_tool_calls": _boolean(body, "parallel_tool_calls", True),
        **_response_format(body.get("response_format"), texts),
        "after_tool": bool(roles) and roles[-1] in ("tool", "function"),
    }


def _logprobs(body: Mapping[str, Any]) -> dict[str, Any]:
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _wrong_type("logprobs", "a boolean", logprobs)
    _check_range(body, "top_logprobs", 0, 20, integer=True)
    top = body.get("top_logprobs")
    if top is not None and not logprobs:
        raise invalid_request(
            "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.", "top_logprobs"
        )
    return {"logprobs": bool(logprobs), "top_logprobs": top or 0}


def text_logprobs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy API's ``logprobs``: an integer 0..5, how many likeliest tokens to list."""
    _check_range(body, "logprobs", 0, 5, integer=True)
    top = body.get("logprobs")
    return {"logprobs": top is not None, "top_logprobs": top or 0}


def _tools(tools: object) -> tuple[Tool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise _wrong_type("tools", "an array", tools)
    if len(tools) > MAX_TOOLS:
        raise _too_long("tools", MAX_TOOLS, len(tools))
    return tuple(_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools))


def _tool(tool: object, param: str) -> Tool:
    """One ``{"type": "function", "function": {name, description, parameters, strict}}``."""
    tool = _object(tool, param)
    kind = tool.get("type")
    if kind is None:
        raise _missing(f"{param}.type")
    if kind != "function":
        raise _bad_value(kind, f"{param}.type", ("function",))
    function = tool.get("function")
    if function is None:
        raise _missing(f"{param}.function")
    function = _object(function, f"{param}.function")
    name = _name(function.get("name"), f"{param}.function.name")
    description = function.get("description", "")
    if not isinstance(description, str):
        raise _wrong_type(f"{param}.function.description", "a string", description)
    parameters = function.get("parameters", {})
    _object(parameters, f"{param}.function.parameters")
    strict = _boolean(function, "strict", False) if function.get("strict") is not None else False
    problem = strict_problem(parameters) if strict else None
    if problem:
        raise invalid_request(
            f"Invalid schema for function '{name}': {problem}", f"{param}.function.parameters", "invalid_function_parameters"
        )
    return Tool(name, description, parameters, strict)


def _tool_choice(choice: object, tools: tuple[Tool, ...]) -> tuple[str, str | None]:
    """``(tool_choice, forced_tool)``: a mode, or ``"function"`` and the function it names."""
    if choice is None:
        return "auto", None
    if not tools:
        raise invalid_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if isinstance(choice, str):
        if choice not in WIRE_TOOL_CHOICES:
            raise _bad_value(choice, "tool_choice", WIRE_TOOL_CHOICES)
        return choice, None
    choice = _object(choice, "tool_choice")
    if choice.get("type") != "function":
        raise _bad_value(choice.get("type"), "tool_choice.type", ("function",))
    function = choice.get("function")
    if function is None:
        raise _missing("tool_choice.function")
    name = _name(_object(function, "tool_choice.function").get("name"), "tool_choice.function.name")
    if name not in {tool.name for tool in tools}:
        raise invalid_request(
            f"Invalid value for 'tool_choice': function '{name}' is not one of the functions in 'tools'.",
            "tool_choice",
            "invalid_value",
        )
    return "function", name


def format_kind(kind: object, param: str, texts: tuple[str, ...], no_json: str, texts_param: str) -> str:
    """An output format's ``type`` (``param``), checked: one of the formats, and ``json_object`` only
    when some text says "json" (else the 400 ``no_json`` naming ``texts_param``)."""
    if kind not in OUTPUT_FORMATS:
        raise _bad_value(kind, param, OUTPUT_FORMATS)
    if kind == "json_object" and not any("json" in text.lower() for text in texts):
        raise invalid_request(no_json, texts_param)
    return kind


def _response_format(value: object, texts: tuple[str, ...]) -> dict[str, Any]:
    """``output_format``, ``output_schema`` and ``output_schema_name`` of ``response_format``."""
    if value is None:
        return {}
    value = _object(value, "response_format")
    kind = value.get("type")
    if kind is None:
        raise _missing("response_format.type")
    no_json = "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
    if format_kind(kind, "response_format.type", texts, no_json, "messages") != "json_schema":
        return {"output_format": kind}
    spec = value.get("json_schema")
    if spec is None:
        raise _missing("response_format.json_schema")
    spec = _object(spec, "response_format.json_schema")
    name = _name(spec.get("name"), "response_format.json_schema.name")
    schema = spec.get("schema", {})
    _object(schema, "response_format.json_schema.schema")
    strict = spec.get("strict") is not None and _boolean(spec, "strict", False)
    problem = strict_problem(schema) if strict else None
    if problem:
        raise invalid_request(f"Invalid schema for response_format '{name}': {problem}", "response_format", "invalid_json_schema")
    return {"output_format": kind, "output_schema": schema, "output_schema_name": name}


def strict_problem(schema: object, context: tuple[str, ...] = ()) -> str | None:
    """What strict mode refuses first in ``schema``, in the real API's words: an object schema
    without ``additionalProperties: false``, or one whose ``required`` leaves out a property."""
    if not isinstance(schema, dict) or len(context) > MAX_CONTEXT:
        return None
    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, dict):
        if schema.get("additionalProperties") is not False:
            return f"In context={context!r}, 'additionalProperties' is required to be supplied and to be false."
        required = schema.get("required") or []
        missing = [key for key in properties or {} if key not in required]
        if missing:
            return (
                f"In context={context!r}, 'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
    return next(filter(None, (strict_problem(sub, where) for where, sub in _subschemas(schema, context))), None)


def _subschemas(schema: Mapping[str, Any], context: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """The schemas nested in ``schema`` and where they are."""
    found = []
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            found += [((*context, key, name), sub) for name, sub in schema[key].items()]
    if isinstance(schema.get("items"), dict):
        found.append(((*context, "items"), schema["items"]))
    for key in ("anyOf", "allOf"):
        if isinstance(schema.get(key), list):
            found += [((*context, key, str(i)), sub) for i, sub in enumerate(schema[key])]
    return found


def tool_tokens(tools: tuple[Tool, ...]) -> int:
    """The prompt tokens of the tool definitions: each function's name, description and schema."""
    return sum(
        count_tokens(tool.name) + count_tokens(tool.description) + count_tokens(json.dumps(tool.parameters)) + 8
        for tool in tools
    )


def option_tokens(options: Mapping[str, Any]) -> int:
    """The prompt tokens of chat's options: the tool definitions and the ``json_schema`` output schema."""
    schema = options.get("output_schema")
    return tool_tokens(options["tools"]) + (count_tokens(json.dumps(schema)) if schema is not None else 0)
