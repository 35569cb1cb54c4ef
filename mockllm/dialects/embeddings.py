"""
The embeddings dialect: ``POST /v1/embeddings``, never streamed.

Parses ``input`` (a string, strings, a token array or token arrays), ``dimensions`` and
``encoding_format`` the way the real API checks them, and answers a ``list`` of ``embedding``
objects.  Each vector is derived from a hash of its input alone (SHAKE-256, read as signed
32-bit integers and scaled to unit length), so the same input always gets the same vector and
different inputs different ones; ``dimensions`` keeps the first components and scales them back
to unit length, as the ``text-embedding-3`` models shorten theirs.  ``base64`` is the vector's
little-endian float32 bytes, what the official SDK asks for and decodes by default; ``float`` is
the same float32 values as JSON numbers.  No reply is drawn (:attr:`Embeddings.replies` is
false): the vectors come from the request alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from array import array
from base64 import b64encode
from typing import Any, Iterator, Mapping

from mockllm.behaviour.content import count_tokens
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame
from mockllm.config.model import EMBEDDING_DIMENSIONS
from mockllm.dialects.openai import OpenAIDialect, _check_model, _check_range, _wrong_type, dumps

#: The most inputs one request may embed.
MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")
#: The models whose vectors may be shortened with ``dimensions``.
_SHORTENABLE = ("text-embedding-3-small", "text-embedding-3-large")
_INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
_LITTLE_ENDIAN = sys.byteorder == "little"

#: One input: its text, or its tokens.
Input = str | tuple[int, ...]


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one(value: object) -> Input | None:
    """``value`` as one input (a non-empty string or token array), or ``None`` if it is neither."""
    if isinstance(value, str):
        return value if value else None
    if isinstance(value, list) and value and all(_is_token(t) for t in value):
        return tuple(value)
    return None


def parse_inputs(value: object) -> tuple[Input, ...]:
    """The inputs of ``input``; the real API's 400 when it is missing, empty or of the wrong type."""
    if value is None:
        raise invalid_request("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if not isinstance(value, (str, list)):
        raise _wrong_type("input", "a string or an array of strings or tokens", value)
    single = _one(value)
    if single is not None:
        return (single,)
    if not value or not isinstance(value, list):
        raise invalid_request(_INVALID_INPUT)
    if len(value) > MAX_INPUTS:
        raise invalid_request(
            f"Invalid 'input': array too long. Expected an array with maximum length {MAX_INPUTS}, "
            f"but got an array with length {len(value)} instead.",
            "input",
            "array_above_max_length",
        )
    inputs = [_one(item) for item in value]
    if any(item is None for item in inputs):
        raise invalid_request(_INVALID_INPUT)
    return tuple(inputs)  # type: ignore[arg-type]


def _dimensions(body: Mapping[str, Any], model: str) -> int | None:
    """``dimensions``: only for the ``text-embedding-3`` models, 1 .. the model's own length."""
    dimensions = body.get("dimensions")
    native = EMBEDDING_DIMENSIONS.get(model)
    if dimensions is None or native is None:
        return None  # a model that is no embedding model is refused once the body is read
    if model not in _SHORTENABLE:
        raise invalid_request("This model does not support specifying dimensions.")
    _check_range(body, "dimensions", 1, native, integer=True)
    return dimensions


def _encoding_format(body: Mapping[str, Any]) -> str:
    encoding = body.get("encoding_format")
    if encoding is None:
        return "float"
    if encoding not in ENCODING_FORMATS:
        raise invalid_request(
            f"Invalid value: {json.dumps(encoding)}. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    return encoding


def _seed(item: Input) -> bytes:
    """The bytes an input's vector is hashed from (a text and a token array never share them)."""
    if isinstance(item, str):
        return b"text\0" + item.encode("utf-8", "surrogatepass")
    return b"tokens\0" + array("q", item).tobytes()


def vector(item: Input, length: int) -> array:
    """The unit-length float32 vector of ``item`` with ``length`` components.

    SHAKE-256 is an extendable-output hash, so a shorter vector's components are the first ones of
    the longer one before scaling: shortening keeps the direction's prefix, as ``dimensions`` does.
    """
    raw = array("i", hashlib.shake_256(_seed(item)).digest(4 * length))
    if not _LITTLE_ENDIAN:
        raw.byteswap()
    norm = math.hypot(*raw) or 1.0
    return array("f", [x / norm for x in raw])


def _tokens(item: Input) -> int:
    return len(item) if isinstance(item, tuple) else count_tokens(item)


def _encoded(values: array, encoding: str) -> list[float] | str:
    """A vector as ``float`` (JSON numbers) or ``base64`` (little-endian float32 bytes)."""
    if encoding == "float":
        return values.tolist()
    if not _LITTLE_ENDIAN:
        values = array("f", values)
        values.byteswap()
    return b64encode(values.tobytes()).decode("ascii")


class Embeddings(OpenAIDialect):
    """``/v1/embeddings``."""

    kind = "embeddings"
    replies = False

    def parse_body(self, body: Mapping[str, Any], stream_override: bool | None) -> CompletionRequest:
        """Validate an embeddings body the way the real API does (``stream`` means nothing here and is ignored)."""
        model = _check_model(body)
        inputs = parse_inputs(body.get("input"))
        _dimensions(body, model)
        _encoding_format(body)
        texts = tuple(item if isinstance(item, str) else " ".join(map(str, item)) for item in inputs)
        return CompletionRequest("embeddings", model, False, False, texts, body, sum(map(_tokens, inputs)))

    def wrong_model(self, model: str) -> APIError | None:
        """A model that is no embedding model gets the real API's 403."""
        if model in EMBEDDING_DIMENSIONS:
            return None
        return APIError(403, "You are not allowed to generate embeddings from this model", "invalid_request_error")

    def new_id(self, ids: Any) -> str:
        """An embeddings answer has no id."""
        return ""

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """The ``list`` of ``embedding`` objects, one per input in order, and the usage."""
        body = request.body
        length = _dimensions(body, request.model) or EMBEDDING_DIMENSIONS[request.model]
        encoding = _encoding_format(body)
        data = [
            {"object": "embedding", "index": index, "embedding": _encoded(vector(item, length), encoding)}
            for index, item in enumerate(parse_inputs(body.get("input")))
        ]
        tokens = request.prompt_tokens
        return dumps(
            {"object": "list", "data": data, "model": request.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    def stream(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> Iterator[Frame]:
        """Never called: an embeddings request does not stream."""
        return iter(())

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """Never called: ``fail_chunk`` has no stream to break here."""
        return b""

    def stream_error(self, request: CompletionRequest, stamp: Stamp, error: APIError, sent: int = 0) -> bytes:
        """Never called: there is no stream to carry an in-band error."""
        return b""
