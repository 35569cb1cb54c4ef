"""
Writes the schemas here that OpenAI's published spec extract (``SOURCE.json``) lacks.

- ``CreateEmbeddingResponseBase64.json``: ``CreateEmbeddingResponse.json`` with each ``embedding``
  a base64 string (the ``encoding_format: "base64"`` form the SDK asks for by default).
- ``Response.json`` and ``ResponseStreamEvent.json``: the Responses API's object and its stream
  events, from the official SDK's own types (``openai.types.responses``), as JSON Schema
  (draft 2020-12) by pydantic.  The SDK version is recorded in each file's ``$comment``.

Run from the checkout's root: ``PYTHONPATH=. /work/venv/bin/python tests/schemas/derive.py``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import openai
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

HERE = Path(__file__).parent
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _strip_descriptions(node: object) -> object:
    """The schema without ``description`` texts (they are the SDK's docs, not constraints)."""
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def _sdk_schema(title: str, schema: dict) -> dict:
    comment = (f"Generated from the openai SDK {openai.__version__} ({title} in openai.types.responses) "
               "by tests/schemas/derive.py. Do not edit by hand.")
    return {"$schema": DRAFT, "title": title, "$comment": comment, **_strip_descriptions(schema)}


def base64_embeddings() -> dict:
    """The embeddings response whose vectors are base64 strings."""
    schema = copy.deepcopy(json.loads((HERE / "CreateEmbeddingResponse.json").read_text()))
    schema["title"] = "CreateEmbeddingResponseBase64"
    schema["$comment"] = ("CreateEmbeddingResponse.json with each embedding a base64 string (encoding_format: "
                          "base64), by tests/schemas/derive.py. Do not edit by hand.")
    schema["$defs"]["Embedding"]["properties"]["embedding"] = {"type": "string", "contentEncoding": "base64"}
    return schema


def main() -> None:
    """Write the three files."""
    files = {
        "CreateEmbeddingResponseBase64": base64_embeddings(),
        "Response": _sdk_schema("Response", Response.model_json_schema()),
        "ResponseStreamEvent": _sdk_schema("ResponseStreamEvent", TypeAdapter(ResponseStreamEvent).json_schema()),
    }
    for name, schema in files.items():
        (HERE / f"{name}.json").write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
