"""
OpenAI wire formats: the JSON objects the real API sends, built as dicts.

Only this module knows field names.  Every builder's output validates against
the schemas vendored in ``tests/schemas`` (keys that the spec requires but
allows to be null, such as ``logprobs`` and ``refusal``, are present).
"""

from __future__ import annotations

import json
import random
from base64 import b64encode
from typing import Any

from mockllm.validation import CompletionRequest

#: Maps base64's two non-alphanumeric characters onto letters, for ids of letters and digits.
_ALPHANUMERIC = bytes.maketrans(b"+/", b"xQ")
MODEL_CREATED = 1698940800
SYSTEM_FINGERPRINT = "fp_0mock11m01"
DONE_EVENT = b"data: [DONE]\n\n"
#: The ``openai-version`` header every response carries.
OPENAI_VERSION = "2020-10-01"


def request_id(ids: random.Random) -> str:
    """A fresh ``x-request-id``: ``req_`` and 32 hex digits."""
    return "req_%032x" % ids.getrandbits(128)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the real API sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse_event(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def completion_id(kind: str, ids: random.Random) -> str:
    """A fresh id in the real API's style, ``chatcmpl-`` or ``cmpl-`` and 29 letters and digits.

    ``ids`` is a generator kept apart from the seeded one, so ids never shift seeded replies.
    """
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
    return prefix + b64encode(ids.randbytes(22)).translate(_ALPHANUMERIC)[:29].decode("ascii")


def usage(request: CompletionRequest, completion: int) -> dict[str, Any]:
    """``usage`` for ``request``'s prompt and a reply of ``completion`` tokens."""
    prompt = request.prompt_tokens
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


def completion(request: CompletionRequest, cid: str, created: int, reply: str, tokens: int) -> dict[str, Any]:
    """A whole (non-streamed) completion of ``reply`` (``tokens`` long): ``chat.completion`` or ``text_completion``."""
    if request.kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
        obj = "chat.completion"
    else:
        choice = {"text": reply, "index": 0, "logprobs": None, "finish_reason": "stop"}
        obj = "text_completion"
    return {
        "id": cid,
        "object": obj,
        "created": created,
        "model": request.model,
        "choices": [choice],
        "usage": usage(request, tokens),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


class ChunkMaker:
    """Builds the streamed events of one completion, all sharing ``id``/``created``/``model``."""

    def __init__(self, request: CompletionRequest, cid: str, created: int) -> None:
        self.request = request
        self._chat = request.kind == "chat"
        #: The 0-based number of the first event carrying content (after the chat role event).
        self.first_content = 1 if self._chat else 0
        #: Whether :meth:`broken` has been called: the stream was cut by a fault.
        self.cut = False
        self._head = {
            "id": cid,
            "object": "chat.completion.chunk" if self._chat else "text_completion",
            "created": created,
            "model": request.model,
        }
        if self._chat:
            self._head["service_tier"] = "default"
        self._head["system_fingerprint"] = SYSTEM_FINGERPRINT

    def _event(self, choices: list[dict[str, Any]], usage_value: Any = None) -> bytes:
        obj = dict(self._head, choices=choices)
        if self.request.include_usage:
            obj["usage"] = usage_value
        return sse_event(obj)

    def _choice(self, delta: dict[str, Any], finish_reason: str | None, text: str = "") -> dict[str, Any]:
        if self._chat:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}

    def role(self) -> bytes | None:
        """The first chat event, whose delta carries the role (``None`` for text completions)."""
        if not self._chat:
            return None
        return self._event([self._choice({"role": "assistant", "content": "", "refusal": None}, None)])

    def piece(self, text: str) -> bytes:
        """One content event carrying ``text``."""
        return self._event([self._choice({"content": text}, None, text)])

    def finish(self) -> bytes:
        """The event with ``finish_reason: "stop"`` and an empty delta."""
        return self._event([self._choice({}, "stop")])

    def usage(self, tokens: int) -> bytes | None:
        """The last event, ``choices: []`` with the usage, when the request asked for it."""
        if not self.request.include_usage:
            return None
        return self._event([], usage(self.request, tokens))

    def broken(self) -> bytes:
        """A malformed event, for ``fail_chunk``: JSON cut off mid-object."""
        self.cut = True
        whole = dumps(dict(self._head, choices=[self._choice({"content": "..."}, None, "...")]))
        return b"data: " + whole[: len(whole) // 2] + b"\n\n"


def model_object(model_id: str) -> dict[str, Any]:
    """One ``model`` object."""
    owner = "openai" if not model_id.startswith("gpt-3.5") else "openai-internal"
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    """The ``GET /v1/models`` list."""
    return {"object": "list", "data": [model_object(m) for m in models]}
