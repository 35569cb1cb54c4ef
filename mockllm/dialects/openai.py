"""
What every OpenAI dialect shares: ids, JSON, the error envelope and status table, the common
and rate-limit headers, SSE ``data:`` framing, body checks, ``usage`` and the model list.

:class:`OpenAIDialect` is the base of the chat (:mod:`.chat`) and legacy text
(:mod:`.completions`) dialects.  Only the dialect modules know OpenAI's field names.  Every
body built here validates against the schemas vendored in ``tests/schemas`` (keys that the
spec requires but allows to be null, such as ``logprobs`` and ``refusal``, are present).
"""

from __future__ import annotations

import json
import math
import random
import time
from base64 import b64encode
from email.utils import formatdate
from json.encoder import c_make_encoder, encode_basestring
from typing import Any, Iterable, Iterator, Mapping

from zope.interface import implementer

from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.plan import StatusFault
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame, reason_phrase
from mockllm.dialects import IDialect, Headers
from mockllm.frozen import Frozen, frozen

#: The ``openai-version`` header every response carries.
OPENAI_VERSION = "2020-10-01"
MODEL_CREATED = 1698940800
SYSTEM_FINGERPRINT = "fp_0mock11m01"
JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"
DONE_EVENT = b"data: [DONE]\n\n"
#: Maps base64's two non-alphanumeric characters onto letters, for ids of letters and digits.
_ALPHANUMERIC = bytes.maketrans(b"+/", b"xQ")
_OPENAI_VERSION = OPENAI_VERSION.encode("ascii")


# --- ids and JSON ----------------------------------------------------------------------------


def request_id(ids: random.Random) -> str:
    """A fresh ``x-request-id``: ``req_`` and 32 hex digits."""
    return "req_%032x" % ids.getrandbits(128)


def new_id(prefix: str, ids: random.Random) -> str:
    """A fresh id in the real API's style: ``prefix`` and 29 letters and digits.

    ``ids`` is a generator kept apart from the seeded one, so ids never shift seeded replies.
    """
    return prefix + b64encode(ids.randbytes(22)).translate(_ALPHANUMERIC)[:29].decode("ascii")


#: The compact encoder of every answer, made once (``json.dumps`` with options makes one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: Its C encoding function, made once too (``JSONEncoder.encode`` makes one, and a cycle-check
#: dict, per call): the arguments ``JSONEncoder.iterencode`` gives it, without the cycle check
#: (an answer is a tree).  ``None`` where Python has no C accelerator.
_ENCODE = c_make_encoder and c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, True)


#: ``obj`` as compact JSON text: the C encoder's pieces joined, or the encoder's own ``encode``.
_encode_text = (lambda obj: "".join(_ENCODE(obj, 0))) if _ENCODE is not None else _ENCODER.encode


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the real API sends it."""
    return _encode_text(obj).encode("utf-8")


def json_text(text: str) -> bytes:
    """``text`` as a JSON string: the bytes of ``dumps(text)``, without going through an encoder."""
    return encode_basestring(text).encode("utf-8")


def data_event(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON on a ``data:`` line."""
    return b"data: " + dumps(obj) + b"\n\n"


#: How a chunk event with no choices ends: the ``choices`` array is the head's last field.
_NO_CHOICES = b'"choices":[]}\n\n'


@frozen
class ChunkTemplate(Frozen):
    """The bytes every chunk event of one stream shares, serialised once per stream.

    ``prefix`` is ``data: {`` with the stream's fields (``id``, ``object``, ``created``,
    ``model``, ...) up to and including the ``[`` of ``choices``; ``suffix`` closes the array,
    with ``"usage":null`` when the request asks for usage, and ends the event.  An event is then
    ``prefix + choice + suffix``: byte for byte what :func:`data_event` makes of the whole object.
    """

    prefix: bytes
    suffix: bytes

    @classmethod
    def of(cls, head: Mapping[str, Any], include_usage: bool) -> "ChunkTemplate":
        """The template of events made of ``head``'s fields and ``choices`` (then ``usage`` if asked for)."""
        whole = data_event(dict(head, choices=[]))
        if not whole.endswith(_NO_CHOICES):
            raise ValueError("a chunk's head must not hold a 'choices' field")
        return cls(whole[: -len(b"]}\n\n")], b'],"usage":null}\n\n' if include_usage else b"]}\n\n")

    def event(self, choice: bytes) -> bytes:
        """The event of one choice, given as its JSON."""
        return self.prefix + choice + self.suffix

    def pieces(self, opening: bytes, pieces: Iterable[str], closing: bytes) -> Iterator[Frame]:
        """One event per piece of text, whose choice's JSON is ``opening``, the piece as a JSON
        string, then ``closing``: only the piece is encoded per event."""
        prefix, suffix = self.prefix, self.suffix
        for piece in pieces:
            yield Frame(b"".join((prefix, opening, json_text(piece), closing, suffix)))

    def usage_event(self, usage_value: bytes) -> bytes:
        """The event before ``[DONE]`` when usage is asked for: no choices, and ``usage`` (its JSON)."""
        return self.prefix + b'],"usage":' + usage_value + b"}\n\n"


# --- errors ----------------------------------------------------------------------------------

#: status -> (message, type, code), as the real API (or the seed document) sends them.
KNOWN_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "You are not allowed to sample from this model.",
        "invalid_request_error",
        "model_not_allowed",
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout_error", None),
    409: ("The request conflicted with another request.", "invalid_request_error", "conflict"),
    413: ("The request is too large.", "invalid_request_error", "request_too_large"),
    422: ("The request could not be processed.", "invalid_request_error", "unprocessable_entity"),
    431: ("Request header fields too large.", "invalid_request_error", "request_header_fields_too_large"),
    429: ("Rate limit exceeded", "rate_limit_error", "rate_limit_exceeded"),
    500: ("Internal server error", "server_error", "internal_error"),
    502: ("Bad gateway.", "server_error", "bad_gateway"),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        "overloaded",
    ),
    504: ("Gateway timeout", "timeout_error", None),
}


def status_error(
    status: int, message: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> APIError:
    """The error the real API sends with ``status``; a generic one for other statuses."""
    known = KNOWN_STATUS_ERRORS.get(status)
    if known is None:
        known = (f"Simulated {status} error", "simulated_error", None)
    default_message, type_, code = known
    return APIError(status, message or default_message, type_, None, code, headers)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def invalid_url(method: bytes, path: bytes) -> APIError:
    """The real API's 404 for a URL it does not serve: ``Invalid URL (METHOD /path)``."""
    return APIError(404, f"Invalid URL ({_text(method)} {_text(path)})", "invalid_request_error")


def method_not_allowed(method: bytes, path: bytes, allowed: str) -> APIError:
    """A 405 for a known path asked with the wrong method (``allowed`` goes in ``Allow`` too)."""
    message = f"Method {_text(method)} is not allowed for {_text(path)}; use {allowed}."
    return APIError(405, message, "invalid_request_error")


def model_not_found(model: str, param: str | None) -> APIError:
    """The real API's 404 for a model it does not serve."""
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        param,
        "model_not_found",
    )


def not_chat_model(model: str) -> APIError:
    """The real API's 404 for a model that is not a chat model (an embedding model) on chat completions."""
    return APIError(
        404,
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
        "Did you mean to use v1/completions?",
        "invalid_request_error",
        "model",
    )


def body_too_large(limit: int) -> APIError:
    """The 413 for a request body over ``--max-body-bytes``."""
    return status_error(
        413, f"The request body is larger than this server's limit of {limit} bytes (--max-body-bytes)."
    )


def context_length_exceeded(window: int, prompt: int, completion: int, kind: str = "chat") -> APIError:
    """The real API's 400 for a prompt (and the ``completion`` tokens asked for) over the model's
    context window, in the wording of the request's API ``kind`` (``chat``, ``text``,
    ``embeddings``, ``responses``)."""
    if kind in ("text", "embeddings"):
        message = (
            f"This model's maximum context length is {window} tokens, however you requested "
            f"{prompt + completion} tokens ({prompt} in your prompt; {completion} for the completion). "
            "Please reduce your prompt; or completion length."
        )
        return APIError(400, message, "invalid_request_error", "prompt" if kind == "text" else "input", "context_length_exceeded")
    if kind == "responses":
        message = "Your input exceeds the context window of this model. Please adjust your input and try again."
        return APIError(400, message, "invalid_request_error", "input", "context_length_exceeded")
    if completion and prompt <= window:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    else:  # a prompt over the window on its own is told without the completion
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages resulted in "
            f"{prompt} tokens. Please reduce the length of the messages."
        )
    return APIError(400, message, "invalid_request_error", "messages", "context_length_exceeded")


_KEY_PAGE = "https://platform.openai.com/account/api-keys"


def missing_api_key() -> APIError:
    """The real API's 401 for a request without ``Authorization: Bearer``."""
    return APIError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
        "username) if you're accessing the API from your browser and are prompted for a username. "
        f"You can obtain an API key from {_KEY_PAGE}.",
        "invalid_request_error",
    )


def incorrect_api_key(shown: str) -> APIError:
    """The real API's 401 for a key it does not know; ``shown`` is the key as masked for display."""
    return APIError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at {_KEY_PAGE}.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def headers_too_large(max_bytes: int, max_headers: int) -> APIError:
    """The 431 for a request-header block over ``max_bytes`` or with more than ``max_headers`` fields."""
    return status_error(
        431,
        f"The request headers are larger than this server's limit of {max_bytes} bytes "
        f"or {max_headers} header fields.",
    )


def rate_limit_headers(
    wait_s: float,
    limit: int = 500,
    remaining: int = 0,
    tokens: tuple[int, int, float] = (200000, 200000, 0.0),
    requests_reset: float | None = None,
) -> tuple[tuple[str, str], ...]:
    """
    ``retry-after`` (whole seconds, rounded up), ``retry-after-ms`` and ``x-ratelimit-*``
    telling a wait of ``wait_s``; ``tokens`` is (limit, remaining, reset seconds) for tokens.

    A reset is the time until that bucket is back at its limit; ``requests_reset`` defaults
    to ``wait_s``.
    """
    return (
        ("retry-after", str(max(1, math.ceil(round(wait_s, 6))))),
        ("retry-after-ms", str(math.ceil(round(wait_s * 1000, 6)))),
        *limit_headers(limit, remaining, wait_s if requests_reset is None else requests_reset, tokens),
    )


def limit_headers(
    limit: int, remaining: int, requests_reset: float, tokens: tuple[int, int, float]
) -> tuple[tuple[str, str], ...]:
    """The six ``x-ratelimit-*`` headers: the request bucket's limit, remaining and reset, then
    the token bucket's (``tokens`` is its limit, remaining and reset seconds)."""
    return tuple(
        (name.decode("ascii"), value.decode("ascii"))
        for name, value in limit_header_bytes(limit, remaining, requests_reset, *tokens)
    )


def limit_header_bytes(
    limit: int, remaining: int, requests_reset: float, token_limit: int, token_remaining: int, token_reset: float
) -> tuple[tuple[bytes, bytes], ...]:
    """:func:`limit_headers` as byte pairs, as every answer sends them."""
    return (
        (b"x-ratelimit-limit-requests", b"%d" % limit),
        (b"x-ratelimit-remaining-requests", b"%d" % remaining),
        (b"x-ratelimit-reset-requests", _duration(requests_reset)),
        (b"x-ratelimit-limit-tokens", b"%d" % token_limit),
        (b"x-ratelimit-remaining-tokens", b"%d" % token_remaining),
        (b"x-ratelimit-reset-tokens", _duration(token_reset)),
    )


def _duration(seconds: float) -> bytes:
    """A reset time as OpenAI writes it: ``1s``, ``0.25s``."""
    return (b"%.3f" % seconds).rstrip(b"0").rstrip(b".") + b"s"


#: The retry headers ``retry_after_format`` chooses among.
_RETRY_AFTER_HEADERS = ("retry-after", "retry-after-ms")


def _retry_after(format_: str, wait_s: float, now: float) -> tuple[tuple[str, str], ...]:
    """The one retry header of ``format_`` (``seconds``, ``ms``, ``date``; ``none``: nothing) telling ``wait_s``."""
    if format_ == "seconds":
        return (("retry-after", str(max(1, math.ceil(round(wait_s, 6))))),)
    if format_ == "ms":
        return (("retry-after-ms", str(math.ceil(round(wait_s * 1000, 6)))),)
    if format_ == "date":
        return (("retry-after", formatdate(math.ceil(now + wait_s), usegmt=True)),)
    return ()


def retry_hints(
    headers: tuple[tuple[str, str], ...], fault: StatusFault, wait_s: float | None, now: float
) -> tuple[tuple[str, str], ...]:
    """``headers`` with ``fault``'s retry hints: only the retry header its ``retry_after_format``
    names (telling ``wait_s``, if there is a wait to tell), and ``x-should-retry``."""
    if fault.retry_after_format is not None:
        kept = tuple(pair for pair in headers if pair[0] not in _RETRY_AFTER_HEADERS)
        told = _retry_after(fault.retry_after_format, wait_s, now) if wait_s is not None else ()
        headers = (*told, *kept)
    if fault.should_retry is not None:
        headers = (*headers, ("x-should-retry", "true" if fault.should_retry else "false"))
    return headers


def error_headers(error: APIError) -> tuple[tuple[str, str], ...]:
    """The headers an error is sent with: its own, or for a 429 the rate-limit headers of a 1 s wait."""
    if error.headers or error.status != 429:
        return error.headers
    return rate_limit_headers(1.0)


def raw_response(error: APIError, request_id: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 response for ``error`` with ``Connection: close``, for answers given below the
    site (the ``max_connections`` 503, the ``Content-Length`` 413), with the common headers."""
    body = dumps(error.body())
    common = [(_title(name.decode("ascii")), value.decode("ascii")) for name, value in common_headers(request_id)]
    lines = [
        f"HTTP/1.1 {error.status} {reason_phrase(error.status).decode('ascii')}",
        f"Content-Type: {JSON.decode('ascii')}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (*extra, *common)),
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _title(name: str) -> str:
    """A header name as Twisted writes it: ``x-request-id`` -> ``X-Request-Id``."""
    return "-".join(part.capitalize() for part in name.split("-"))


def common_headers(request_id: str) -> Headers:
    """The headers every response carries: ``x-request-id``, ``openai-version`` and an
    ``openai-processing-ms`` of 0 (answers overwrite it with their own time)."""
    return (
        (b"x-request-id", request_id.encode("ascii")),
        (b"openai-version", _OPENAI_VERSION),
        (b"openai-processing-ms", b"0"),
    )


# --- request bodies ----------------------------------------------------------------------------

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


#: The request bodies' decoder, made once: ``json.loads`` with any option builds a decoder (and its
#: scanner) per call, which was a tenth of a stream's opening.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object (as ``json.loads`` decodes bytes), or raise the real API's 400."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        if text.startswith("\ufeff"):
            raise ValueError("Unexpected UTF-8 BOM")
        body = _DECODER.decode(text)
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


# --- answers ---------------------------------------------------------------------------------


def usage_fields(prompt: int, completion: int) -> dict[str, Any]:
    """``usage`` for a prompt of ``prompt`` tokens and a reply of ``completion`` tokens."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


#: ``usage``'s fields after ``total_tokens``, the same in every answer, as JSON (without the braces).
_USAGE_DETAILS = dumps({k: v for k, v in usage_fields(0, 0).items() if k.endswith("_details")})[1:-1]


def usage_json(request: CompletionRequest, completion: int) -> bytes:
    """``dumps(usage_fields(request.prompt_tokens, completion))``, written from its constant parts."""
    prompt = request.prompt_tokens
    return b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,%s}' % (
        prompt, completion, prompt + completion, _USAGE_DETAILS
    )


#: Who owns a model, by id prefix, as the real model list says (others: ``openai``).
_OWNERS = (("gpt-3.5", "openai-internal"), ("text-embedding-ada", "openai-internal"), ("text-embedding-3", "system"))


def model_object(model_id: str) -> dict[str, Any]:
    """One ``model`` object."""
    owner = next((who for prefix, who in _OWNERS if model_id.startswith(prefix)), "openai")
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    """The ``GET /v1/models`` list."""
    return {"object": "list", "data": [model_object(m) for m in models]}


#: How every whole answer ends, after its usage.
_WHOLE_END = b',"service_tier":"default","system_fingerprint":' + json_text(SYSTEM_FINGERPRINT) + b"}"


@implementer(IDialect)
class OpenAIDialect:
    """What the chat and text dialects share: the envelope, the headers and the stream's framing.

    A subclass gives :attr:`kind`, :attr:`id_prefix`, :attr:`chunk_object`, :meth:`parse_body`,
    :meth:`render`, :meth:`frames` and :meth:`broken`.
    """

    kind = ""
    id_prefix = ""
    #: The ``object`` of each streamed event, and whether it carries ``service_tier``.
    chunk_object = ""
    chunk_service_tier = False
    #: The answer is a reply the engine draws (embeddings: ``False``, answered from the request alone).
    replies = True
    content_type = JSON
    stream_content_type = EVENT_STREAM
    stream_headers: Headers = ((b"cache-control", b"no-cache"),)

    def parse(self, raw: bytes, stream_override: bool | None) -> CompletionRequest:
        """The request model of a body (``stream_override``: the query's ``stream``)."""
        return self.parse_body(parse_json_object(raw), stream_override)

    def model_refusal(self, model: str, served: bool) -> APIError | None:
        """The 404 ``model_not_found`` for a model the server does not have; any other is answered."""
        return None if served else model_not_found(model, "model")

    def parse_body(self, body: Mapping[str, Any], stream_override: bool | None) -> CompletionRequest:
        """The request model of a decoded JSON object."""
        raise NotImplementedError

    def new_id(self, ids: random.Random) -> str:
        """A fresh completion id."""
        return new_id(self.id_prefix, ids)

    def common_headers(self, request_id: str) -> Headers:
        """The headers every response carries (see :func:`common_headers`)."""
        return common_headers(request_id)

    def timing_headers(self, elapsed: float) -> Headers:
        """``openai-processing-ms`` for an answer whose status goes out ``elapsed`` seconds in."""
        return ((b"openai-processing-ms", b"%d" % round(elapsed * 1000)),)

    def error(self, error: APIError) -> tuple[Headers, bytes]:
        """The ``{"error": ...}`` envelope of ``error`` and the headers it goes with."""
        headers = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in error_headers(error))
        return headers, dumps(error.body())

    def fault_error(self, fault: StatusFault, now: float | None = None) -> APIError:
        """The error a status fault answers with; ``retry_after`` sets the rate-limit headers (a 429
        tells 1 s without it), then the retry hints apply (:func:`retry_hints`; ``now``, the
        server's time, dates a ``retry-after`` HTTP-date)."""
        wait = fault.retry_after if fault.retry_after is not None else 1.0 if fault.status == 429 else None
        headers = fault.headers
        if not headers and wait is not None:
            headers = rate_limit_headers(wait)
        headers = retry_hints(headers, fault, wait, time.time() if now is None else now)
        return status_error(fault.status, fault.message, headers)

    def stream_error(self, request: CompletionRequest, stamp: Stamp, error: APIError, sent: int = 0) -> bytes:
        """The in-band error event ending a 200 stream: ``data: {"error": {message, type, param, code}}``
        (the official SDK raises ``APIError`` when it reads it); it carries no number, so ``sent`` is unused."""
        return data_event(error.body())

    def stream(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> Iterator[Frame]:
        """The stream's frames (see :meth:`frames`), the usage event if asked for, then ``data: [DONE]``."""
        template = self.template(request, stamp)
        yield from self.frames(request, reply, template)
        if request.include_usage:
            yield Frame(template.usage_event(usage_json(request, reply.completion_tokens)))
        yield Frame(DONE_EVENT)

    def frames(self, request: CompletionRequest, reply: Reply, template: ChunkTemplate) -> Iterator[Frame]:
        """The stream's events before the usage event, each one choice framed by ``template``."""
        raise NotImplementedError

    def template(self, request: CompletionRequest, stamp: Stamp) -> ChunkTemplate:
        """The bytes every chunk event of this answer shares (see :class:`ChunkTemplate`): its
        :meth:`head`, and ``usage`` (null until the last event) when the request asks for it."""
        return ChunkTemplate.of(self.head(request, stamp), request.include_usage)

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """The whole (non-streamed) answer."""
        raise NotImplementedError

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """A malformed event, for ``fail_chunk``: JSON cut off mid-object."""
        raise NotImplementedError

    def whole(self, request: CompletionRequest, reply: Reply, stamp: Stamp, kind: str, choices: bytes) -> bytes:
        """A whole answer: an object of type ``kind`` with ``choices`` (their JSON array), the usage
        and the common fields (``id``, ``object``, ``created``, ``model``, ``choices``, ``usage``,
        ``service_tier``, ``system_fingerprint``), written around the JSON of ``choices``, the only
        part that varies in shape."""
        return b"".join((
            b'{"id":', json_text(stamp.id), b',"object":', json_text(kind), b',"created":%d,"model":' % stamp.created,
            json_text(request.model), b',"choices":', choices, b',"usage":',
            usage_json(request, reply.completion_tokens), _WHOLE_END,
        ))

    def head(self, request: CompletionRequest, stamp: Stamp) -> dict[str, Any]:
        """The fields every streamed event of one answer shares."""
        head = {"id": stamp.id, "object": self.chunk_object, "created": stamp.created, "model": request.model}
        if self.chunk_service_tier:
            head["service_tier"] = "default"
        head["system_fingerprint"] = SYSTEM_FINGERPRINT
        return head

    def cut(self, event: dict[str, Any]) -> bytes:
        """``event`` as a ``data:`` line cut off half-way through its JSON."""
        whole = dumps(event)
        return b"data: " + whole[: len(whole) // 2] + b"\n\n"
