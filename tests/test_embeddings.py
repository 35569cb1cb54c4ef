"""
``POST /v1/embeddings``: deterministic unit vectors per input, ``dimensions``, ``float`` and
``base64`` encodings, the real API's 400s and 403, the failure controls; in memory and through the
official SDK over a real socket.
"""

from __future__ import annotations

import base64
import json
import math
import time
from array import array

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.config import Config
from mockllm.http.routes import MockLLM
from tests.support import RawHTTP, listen, make_app, validate

PATH = "/v1/embeddings"
SMALL = "text-embedding-3-small"


def floats(encoded: str) -> list[float]:
    """A base64 vector as the floats its little-endian float32 bytes hold."""
    values = array("f", base64.b64decode(encoded))
    return values.tolist()


class InMemoryTests(unittest.TestCase):
    """The route in memory, on the app's real site."""

    def setUp(self) -> None:
        self.app, self.clock = make_app()

    def post(self, body, query: str = "", headers=None) -> RawHTTP:
        """Send ``body`` to the route and return the connection."""
        return RawHTTP(self.app).send("POST", PATH + query, body, headers)

    def embed(self, **body) -> dict:
        """A successful answer's body, validated against its encoding's schema."""
        conn = self.post(dict({"model": SMALL}, **body))
        self.assertEqual(conn.status, 200, conn.body)
        schema = "CreateEmbeddingResponseBase64" if body.get("encoding_format") == "base64" else "CreateEmbeddingResponse"
        return validate(schema, conn.json())

    def error(self, body, status: int = 400) -> dict:
        """An error answer's ``error`` object, validated, with ``status``."""
        conn = self.post(body)
        self.assertEqual(conn.status, status, conn.body)
        return validate("ErrorResponse", conn.json())["error"]

    def test_one_string(self) -> None:
        """A string gets one unit-length vector of the model's length, the model echoed, usage counted."""
        body = self.embed(input="Hello world")
        self.assertEqual(body["object"], "list")
        self.assertEqual(body["model"], SMALL)
        (item,) = body["data"]
        self.assertEqual((item["object"], item["index"], len(item["embedding"])), ("embedding", 0, 1536))
        self.assertAlmostEqual(math.hypot(*item["embedding"]), 1.0, places=5)
        self.assertEqual(body["usage"], {"prompt_tokens": 2, "total_tokens": 2})

    def test_native_lengths(self) -> None:
        """Each embedding model answers with its own length: 1536, 3072, 1536."""
        for model, length in (("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072),
                              ("text-embedding-ada-002", 1536)):
            body = self.embed(model=model, input="x")
            self.assertEqual(len(body["data"][0]["embedding"]), length)

    def test_deterministic_and_distinct(self) -> None:
        """The same text gets the same vector (alone or in a list, in any request); different texts differ."""
        alone = self.embed(input="same")["data"][0]["embedding"]
        listed = self.embed(input=["other", "same"])["data"]
        self.assertEqual([d["index"] for d in listed], [0, 1])
        self.assertEqual(listed[1]["embedding"], alone)
        self.assertNotEqual(listed[0]["embedding"], alone)
        self.assertLess(abs(sum(a * b for a, b in zip(listed[0]["embedding"], alone))), 0.2)

    def test_token_arrays(self) -> None:
        """A token array and a list of them are inputs too, counted by their tokens; they differ from text."""
        one = self.embed(input=[1, 2, 3])
        self.assertEqual((len(one["data"]), one["usage"]["prompt_tokens"]), (1, 3))
        many = self.embed(input=[[1, 2, 3], [4, 5]])
        self.assertEqual((len(many["data"]), many["usage"]["prompt_tokens"]), (2, 5))
        self.assertEqual(many["data"][0]["embedding"], one["data"][0]["embedding"])
        self.assertNotEqual(self.embed(input="1 2 3")["data"][0]["embedding"], one["data"][0]["embedding"])

    def test_dimensions(self) -> None:
        """``dimensions`` shortens a 3-model's vector to that length, still of unit length, pointing the same way."""
        full = self.embed(input="text", model="text-embedding-3-large")["data"][0]["embedding"]
        short = self.embed(input="text", model="text-embedding-3-large", dimensions=256)["data"][0]["embedding"]
        self.assertEqual(len(short), 256)
        self.assertAlmostEqual(math.hypot(*short), 1.0, places=5)
        scale = math.hypot(*full[:256])
        for a, b in zip(short, full):
            self.assertAlmostEqual(a, b / scale, places=5)

    def test_odd_and_tiny_dimensions(self) -> None:
        """Odd and tiny lengths (1, 3, 257) are unit vectors too, the same in both encodings."""
        for dimensions in (1, 3, 257):
            plain = self.embed(input="odd", dimensions=dimensions)["data"][0]["embedding"]
            encoded = self.embed(input="odd", dimensions=dimensions, encoding_format="base64")["data"][0]["embedding"]
            self.assertEqual(len(plain), dimensions)
            self.assertAlmostEqual(math.hypot(*plain), 1.0, places=5)
            self.assertEqual(floats(encoded), plain)

    def test_largest_request_is_quick(self) -> None:
        """2048 inputs of 3072 components (130 MB of JSON) are answered without holding the reactor for seconds."""
        inputs = [f"text {i}" for i in range(2048)]
        started = time.process_time()  # CPU time: what the reactor is held for, whatever else the machine runs
        conn = self.post({"model": "text-embedding-3-large", "input": inputs})
        elapsed = time.process_time() - started
        self.assertEqual(conn.status, 200)
        self.assertLess(elapsed, 3.0)
        self.assertTrue(conn.complete)
        self.assertIn(b'"index":2047,', conn.body[-80_000:])
        self.assertIn(b'"model":"text-embedding-3-large","usage":{"prompt_tokens":', conn.body[-200:])

    def test_base64_is_the_float_vector(self) -> None:
        """``base64`` carries the very float32 values ``float`` sends, little-endian."""
        plain = self.embed(input="abc")["data"][0]["embedding"]
        encoded = self.embed(input="abc", encoding_format="base64")["data"][0]["embedding"]
        self.assertEqual(floats(encoded), plain)

    def test_stream_is_ignored(self) -> None:
        """``stream`` (body or query) means nothing here: the answer is the usual JSON."""
        conn = self.post({"model": SMALL, "input": "x", "stream": True}, "?stream=true")
        self.assertEqual(conn.headers["content-type"], "application/json")
        validate("CreateEmbeddingResponse", conn.json())

    def test_bad_input(self) -> None:
        """Missing, empty or mistyped ``input`` is the real API's 400."""
        invalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
        for value in ("", [], [""], ["a", ""], [[]], [["a"]]):
            self.assertEqual(self.error({"model": SMALL, "input": value})["message"], invalid, value)
        missing = self.error({"model": SMALL})
        self.assertEqual((missing["param"], missing["code"]), ("input", "missing_required_parameter"))
        self.assertEqual(self.error({"model": SMALL, "input": 5})["code"], "invalid_type")
        too_many = self.error({"model": SMALL, "input": ["a"] * 2049})
        self.assertEqual(too_many["code"], "array_above_max_length")

    def test_bad_dimensions_and_format(self) -> None:
        """``dimensions`` outside 1..native or on ada-002, and an unknown ``encoding_format``, are 400s."""
        ada = self.error({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8})
        self.assertEqual(ada["message"], "This model does not support specifying dimensions.")
        for value, code in ((0, "below_min_value"), (1537, "above_max_value"), ("8", "invalid_type")):
            error = self.error({"model": SMALL, "input": "x", "dimensions": value})
            self.assertEqual((error["param"], error["code"]), ("dimensions", code))
        error = self.error({"model": SMALL, "input": "x", "encoding_format": "int8"})
        self.assertEqual((error["param"], error["code"]), ("encoding_format", "invalid_value"))

    def test_models_of_the_wrong_kind(self) -> None:
        """A chat model here is the real 403; an embedding model on chat the real 404; an unknown model 404."""
        error = self.error({"model": "gpt-4o-mini", "input": "x"}, 403)
        self.assertEqual(error["message"], "You are not allowed to generate embeddings from this model")
        self.assertEqual(self.error({"model": "nope", "input": "x"}, 404)["code"], "model_not_found")
        conn = RawHTTP(self.app).send("POST", "/v1/chat/completions",
                                      {"model": SMALL, "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(conn.status, 404)
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertTrue(error["message"].startswith("This is not a chat model"), error)
        self.assertEqual(error["param"], "model")

    def test_listed_in_models(self) -> None:
        """``/v1/models`` lists the three embedding models; each can be retrieved."""
        listed = validate("ListModelsResponse", RawHTTP(self.app).send("GET", "/v1/models").json())
        ids = [m["id"] for m in listed["data"]]
        for model in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):
            self.assertIn(model, ids)
            validate("Model", RawHTTP(self.app).send("GET", f"/v1/models/{model}").json())

    def test_failure_controls(self) -> None:
        """``fail=429`` and ``delay`` apply here as on chat; the journal's record counts no completion tokens."""
        conn = self.post({"model": SMALL, "input": "x"}, "?fail=429")
        self.assertEqual(conn.status, 429)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["code"], "rate_limit_exceeded")
        self.assertIn("retry-after-ms", conn.headers)
        delayed = self.post({"model": SMALL, "input": "x"}, "?delay=500")
        self.assertIsNone(delayed.status)
        self.clock.advance(0.5)
        self.assertEqual(delayed.status, 200)
        validate("CreateEmbeddingResponse", delayed.json())


class JournalTests(unittest.TestCase):
    """Embeddings are journaled and counted like any completion route."""

    def test_recorded(self) -> None:
        """The record has the route, the status and 0 completion tokens (no reply was drawn)."""
        finished = []

        class Keep:
            def exchange_started(self, ex) -> None:
                """Nothing yet."""

            def exchange_finished(self, ex) -> None:
                """Keep it."""
                finished.append(ex)

        app, _ = make_app(observers=[Keep()])
        RawHTTP(app).send("POST", PATH, {"model": SMALL, "input": ["a", "b"]})
        (ex,) = finished
        self.assertEqual((ex.path, ex.status, ex.completion_tokens), (PATH, 200, 0))


class SDKTests(unittest.TestCase):
    """The official SDK's ``embeddings.create`` over a real socket."""

    timeout = 30

    def setUp(self) -> None:
        self.base = listen(self, MockLLM(Config(), reactor))

    def sdk(self, **kwargs) -> openai.OpenAI:
        """An SDK client for this server, closed in cleanup."""
        client = openai.OpenAI(base_url=self.base + "/v1", api_key="sk-test", timeout=10, **kwargs)
        self.addCleanup(client.close)
        return client

    async def test_default_base64(self) -> None:
        """By default the SDK asks for base64 and decodes it: unit vectors of the model's length."""
        client = self.sdk()
        raw = await deferToThread(client.embeddings.with_raw_response.create, model=SMALL, input=["a", "b"])
        validate("CreateEmbeddingResponseBase64", json.loads(raw.text))
        result = raw.parse()
        self.assertEqual([len(d.embedding) for d in result.data], [1536, 1536])
        self.assertAlmostEqual(math.hypot(*result.data[0].embedding), 1.0, places=5)
        self.assertEqual(result.usage.prompt_tokens, 2)

    async def test_float_matches_base64(self) -> None:
        """``encoding_format="float"`` gives the same vectors the default base64 decodes to."""
        client = self.sdk()
        plain = await deferToThread(client.embeddings.create, model=SMALL, input="hello", encoding_format="float")
        decoded = await deferToThread(client.embeddings.create, model=SMALL, input="hello")
        self.assertEqual(plain.data[0].embedding, decoded.data[0].embedding)

    async def test_dimensions_and_errors(self) -> None:
        """``dimensions`` is honoured; a chat model raises PermissionDeniedError, an empty input BadRequestError."""
        client = self.sdk(max_retries=0)
        short = await deferToThread(client.embeddings.create, model="text-embedding-3-large", input="x", dimensions=64)
        self.assertEqual(len(short.data[0].embedding), 64)
        with self.assertRaises(openai.PermissionDeniedError):
            await deferToThread(client.embeddings.create, model="gpt-4o", input="x")
        with self.assertRaises(openai.BadRequestError):
            await deferToThread(client.embeddings.create, model=SMALL, input="")

    async def test_fail_429(self) -> None:
        """``?fail=429`` raises RateLimitError through the SDK, as on chat."""
        client = self.sdk(max_retries=0)
        with self.assertRaises(openai.RateLimitError):
            await deferToThread(client.embeddings.create, model=SMALL, input="x", extra_query={"fail": "429"})
