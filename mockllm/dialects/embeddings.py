"""
The embeddings dialect: ``POST /v1/embeddings``, never streamed.

Parses ``input`` (a string, strings, a token array or token arrays), ``dimensions`` and
``encoding_format`` the way the real API checks them, and answers a ``list`` of ``embedding``
objects.  Each vector is derived from a hash of its input alone (SHAKE-256, one byte picking
the angle of each pair of components; see :class:`Palette`), so the same input always gets the
same vector and different inputs different ones; ``dimensions`` keeps the first components and
scales them back to unit length, as the ``text-embedding-3`` models shorten theirs.  ``base64`` is the vector's
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
from functools import lru_cache
from typing import Any, Iterator, Mapping

from mockllm.behaviour.content import count_tokens
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.reply import Reply, Stamp
from mockllm.behaviour.request import CompletionRequest
from mockllm.behaviour.steps import Frame
from mockllm.config.model import EMBEDDING_DIMENSIONS
from mockllm.dialects.openai import OpenAIDialect, _check_model, _check_range, _wrong_type, dumps
from mockllm.frozen import Frozen, frozen

#: The most inputs one request may embed.
MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")
#: How many angles a pair of components may point at (one hash byte picks one).
ANGLES = 256
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


@frozen
class Palette(Frozen):
    """The component values of unit vectors of one length, as float32 bytes and as JSON text.

    Components come in pairs ``scale * (cos t, sin t)`` for one of :data:`ANGLES` angles ``t``, with
    ``scale = sqrt(2 / length)``: every pair has the same norm, so a vector of ``length / 2`` pairs
    has length 1 whatever the angles (an odd length ends with ``+-sqrt(1 / length)``).  A vector is
    then one table look-up per hash byte, done in C, with no arithmetic per component.
    """

    #: Per angle: the pair as little-endian float32 bytes, and as JSON numbers (``"a,b"``).
    packed: tuple[bytes, ...]
    texts: tuple[str, ...]
    #: The odd last component, positive and negative: bytes and JSON.
    last_packed: tuple[bytes, bytes]
    last_texts: tuple[str, str]


@lru_cache(maxsize=64)
def palette(length: int) -> Palette:
    """The :class:`Palette` of vectors with ``length`` components."""
    scale, last = math.sqrt(2 / length), math.sqrt(1 / length)
    angles = [2 * math.pi * (k + 0.5) / ANGLES for k in range(ANGLES)]
    pairs = array("f", [v for t in angles for v in (scale * math.cos(t), scale * math.sin(t))])
    ends = array("f", [last, -last])
    values, end_values = pairs.tolist(), ends.tolist()
    if not _LITTLE_ENDIAN:
        pairs.byteswap()
        ends.byteswap()
    raw, end_raw = pairs.tobytes(), ends.tobytes()
    return Palette(
        tuple(raw[8 * k: 8 * k + 8] for k in range(ANGLES)),
        tuple(f"{values[2 * k]!r},{values[2 * k + 1]!r}" for k in range(ANGLES)),
        (end_raw[:4], end_raw[4:]),
        (repr(end_values[0]), repr(end_values[1])),
    )


def _angles(item: Input, length: int) -> bytes:
    """One hash byte per pair of components, and one more for an odd last component's sign.

    SHAKE-256 is an extendable-output hash: a shorter vector's bytes are the first ones of the
    longer vector's, so shortening with ``dimensions`` keeps the direction of the first components.
    """
    return hashlib.shake_256(_seed(item)).digest(length // 2 + 1)


def vector_bytes(item: Input, length: int) -> bytes:
    """The unit-length vector of ``item`` with ``length`` components, as little-endian float32 bytes."""
    angles, table = _angles(item, length), palette(length)
    pairs = b"".join(map(table.packed.__getitem__, angles[: length // 2]))
    return pairs + table.last_packed[angles[-1] & 1] if length % 2 else pairs


def vector_json(item: Input, length: int) -> str:
    """The same vector as a JSON array of numbers (the very float32 values of :func:`vector_bytes`)."""
    angles, table = _angles(item, length), palette(length)
    parts = list(map(table.texts.__getitem__, angles[: length // 2]))
    if length % 2:
        parts.append(table.last_texts[angles[-1] & 1])
    return "[" + ",".join(parts) + "]"


def _tokens(item: Input) -> int:
    return len(item) if isinstance(item, tuple) else count_tokens(item)


def _encoded(item: Input, length: int, encoding: str) -> bytes:
    """A vector as ``float`` (a JSON array) or ``base64`` (a JSON string of its float32 bytes)."""
    if encoding == "float":
        return vector_json(item, length).encode("ascii")
    return b'"' + b64encode(vector_bytes(item, length)) + b'"'


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

    def model_refusal(self, model: str, served: bool) -> APIError | None:
        """An unknown model is a 404 ``model_not_found``; a served one that is no embedding model the real 403."""
        if served and model not in EMBEDDING_DIMENSIONS:
            return APIError(403, "You are not allowed to generate embeddings from this model", "invalid_request_error")
        return super().model_refusal(model, served)

    def new_id(self, ids: Any) -> str:
        """An embeddings answer has no id."""
        return ""

    def render(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> bytes:
        """The ``list`` of ``embedding`` objects, one per input in order, and the usage.

        The vectors' JSON is spliced in as made, not re-encoded: a request of 2048 inputs of 3072
        components answers in a fraction of a second.
        """
        body = request.body
        length = _dimensions(body, request.model) or EMBEDDING_DIMENSIONS[request.model]
        encoding = _encoding_format(body)
        data = b",".join(
            b'{"object":"embedding","index":%d,"embedding":%s}' % (index, _encoded(item, length, encoding))
            for index, item in enumerate(parse_inputs(body.get("input")))
        )
        tokens = request.prompt_tokens
        usage = dumps({"prompt_tokens": tokens, "total_tokens": tokens})
        return b'{"object":"list","data":[' + data + b'],"model":' + dumps(request.model) + b',"usage":' + usage + b"}"

    def stream(self, request: CompletionRequest, reply: Reply, stamp: Stamp) -> Iterator[Frame]:
        """Never called: an embeddings request does not stream."""
        return iter(())

    def broken(self, request: CompletionRequest, stamp: Stamp) -> bytes:
        """Never called: ``fail_chunk`` has no stream to break here."""
        return b""

    def stream_error(self, request: CompletionRequest, stamp: Stamp, error: APIError, sent: int = 0) -> bytes:
        """Never called: there is no stream to carry an in-band error."""
        return b""
