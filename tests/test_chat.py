"""
In-memory tests of the completion routes with ``treq.testing.StubTreq`` and
``task.Clock``: shapes, streaming, the seed's failure controls.
"""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.trial import unittest

from mockllm.behaviour import content
from mockllm.config import Config, ResponsesConfig
from tests.support import CHAT_BODY, RawHTTP, make_app, parse_sse, validate

URL = "http://localhost/v1/chat/completions"


class StubCase(unittest.TestCase):
    """Base: an app on a clock and a StubTreq client for it."""

    config: Config | None = None

    def setUp(self) -> None:
        self.app, self.clock = make_app(self.config)
        self.client = StubTreq(self.app.resource())

    def post(self, url: str = URL, body: object = CHAT_BODY, **kwargs):
        """POST ``body`` as JSON; returns the (maybe unfired) response Deferred."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        d = self.client.post(url, data=data, headers={"Content-Type": "application/json"}, **kwargs)
        self.client.flush()
        return d

    def body_of(self, d):
        """The JSON body of an already-fired response Deferred."""
        response = self.successResultOf(d)
        return response, self.successResultOf(self.client.json_content(response))

    def text_of(self, d):
        """The raw body of an already-fired response Deferred."""
        response = self.successResultOf(d)
        return response, self.successResultOf(self.client.content(response))

    def advance(self, seconds: float, steps: int = 1) -> None:
        """Move the clock forward in ``steps`` equal steps, delivering what is written."""
        for _ in range(steps):
            self.clock.advance(seconds / steps)
            self.client.flush()


class ChatCompletionTests(StubCase):
    """A plain chat completion."""

    def test_shape_validates(self) -> None:
        """The body validates against OpenAI's CreateChatCompletionResponse schema."""
        response, body = self.body_of(self.post())
        self.assertEqual(response.code, 200)
        validate("CreateChatCompletionResponse", body)
        self.assertRegex(body["id"], r"^chatcmpl-[A-Za-z0-9]{29}$")
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["model"], "gpt-4o-mini")
        self.assertIsInstance(body["system_fingerprint"], str)
        choice = body["choices"][0]
        self.assertIsNone(choice["logprobs"])
        self.assertIsNone(choice["message"]["refusal"])
        self.assertEqual(choice["finish_reason"], "stop")

    def test_model_is_echoed(self) -> None:
        """The response names the model the request asked for."""
        _, body = self.body_of(self.post(body=dict(CHAT_BODY, model="gpt-4")))
        self.assertEqual(body["model"], "gpt-4")

    def test_usage_agrees_with_text(self) -> None:
        """``usage`` counts the reply's tokens and adds up."""
        _, body = self.body_of(self.post())
        usage = validate("CompletionUsage", body["usage"])
        reply = body["choices"][0]["message"]["content"]
        self.assertEqual(usage["completion_tokens"], content.count_tokens(reply))
        self.assertEqual(usage["prompt_tokens"], content.prompt_tokens(["Hello"]))
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])

    def test_replies_vary(self) -> None:
        """Replies are drawn from templates: twenty requests give more than one text."""
        replies = {self.body_of(self.post())[1]["choices"][0]["message"]["content"] for _ in range(20)}
        self.assertGreater(len(replies), 1)

    def test_common_headers(self) -> None:
        """Every response carries x-request-id, openai-processing-ms and openai-version."""
        response = self.successResultOf(self.post())
        headers = response.headers
        self.assertTrue(headers.getRawHeaders("x-request-id")[0].startswith("req_"))
        self.assertEqual(headers.getRawHeaders("openai-version"), ["2020-10-01"])
        self.assertEqual(headers.getRawHeaders("openai-processing-ms"), ["0"])
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])

    def test_unknown_model_404(self) -> None:
        """A model the server does not serve gets 404 model_not_found."""
        response, body = self.body_of(self.post(body=dict(CHAT_BODY, model="gpt-99")))
        self.assertEqual(response.code, 404)
        validate("ErrorResponse", body)
        self.assertEqual(body["error"]["code"], "model_not_found")
        self.assertEqual(body["error"]["param"], "model")


class TextCompletionTests(StubCase):
    """The legacy ``/v1/completions`` route."""

    def test_shape_validates(self) -> None:
        """A text completion validates against CreateCompletionResponse."""
        d = self.post("http://localhost/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "Say hi"})
        response, body = self.body_of(d)
        self.assertEqual(response.code, 200)
        validate("CreateCompletionResponse", body)
        self.assertEqual(body["object"], "text_completion")
        self.assertTrue(body["id"].startswith("cmpl-"))

    def test_streamed(self) -> None:
        """A streamed text completion ends with a stop chunk and [DONE]; its text adds up."""
        d = self.post("http://localhost/v1/completions", {"model": "gpt-4o", "prompt": "x", "stream": True})
        self.advance(5, steps=100)
        _, raw = self.text_of(d)
        events = parse_sse(raw)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "stop")
        self.assertTrue(all(c["object"] == "text_completion" for c in chunks))
        self.assertGreater(len("".join(c["choices"][0]["text"] for c in chunks)), 10)


class ModelsAndHealthTests(StubCase):
    """``/v1/models``, ``/v1/models/{id}`` and ``/health``."""

    def test_list(self) -> None:
        """The list validates and names the default models: four chat and three embedding models."""
        response, body = self.body_of(self.client.get("http://localhost/v1/models"))
        validate("ListModelsResponse", body)
        self.assertEqual(
            [m["id"] for m in body["data"]], ["gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "gpt-4",
             "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
        )

    def test_one(self) -> None:
        """One model validates; an unknown one is 404 model_not_found."""
        _, body = self.body_of(self.client.get("http://localhost/v1/models/gpt-4o"))
        validate("Model", body)
        response, body = self.body_of(self.client.get("http://localhost/v1/models/nope"))
        self.assertEqual(response.code, 404)
        self.assertEqual(validate("ErrorResponse", body)["error"]["code"], "model_not_found")

    def test_health(self) -> None:
        """``/health`` answers ``{"status": "healthy"}`` with the common headers."""
        response, body = self.body_of(self.client.get("http://localhost/health"))
        self.assertEqual(body, {"status": "healthy"})
        self.assertTrue(response.headers.hasHeader("x-request-id"))


class StreamingTests(StubCase):
    """``stream: true`` (or ``?stream=true``)."""

    def stream(self, url: str = URL, body: object = None) -> list[dict]:
        """POST a streaming request, run the clock, check the SSE framing; return the validated chunks."""
        d = self.post(url, dict(CHAT_BODY, stream=True) if body is None else body)
        self.advance(5, steps=200)
        response, raw = self.text_of(d)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"])
        events = parse_sse(raw)
        self.assertEqual(events[-1], "[DONE]")
        return [validate("CreateChatCompletionStreamResponse", json.loads(e)) for e in events[:-1]]

    def test_event_sequence(self) -> None:
        """Role first, then one token per content chunk, then an empty stop delta; ids agree."""
        chunks = self.stream()
        self.assertEqual(len({(c["id"], c["created"], c["model"]) for c in chunks}), 1)
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        middle = chunks[1:-1]
        self.assertTrue(all(c["choices"][0]["finish_reason"] is None for c in middle))
        reply = "".join(c["choices"][0]["delta"]["content"] for c in middle)
        self.assertEqual(len(middle), content.count_tokens(reply))
        self.assertEqual(chunks[-1]["choices"][0], {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"})
        self.assertNotIn("usage", chunks[0])

    def test_query_stream_flag(self) -> None:
        """The seed's ``?stream=true`` streams a body that did not ask to."""
        chunks = self.stream(URL + "?stream=true", CHAT_BODY)
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "stop")

    def test_include_usage(self) -> None:
        """With include_usage every chunk has usage null and a last chunk carries it."""
        body = dict(CHAT_BODY, stream=True, stream_options={"include_usage": True})
        chunks = self.stream(body=body)
        self.assertTrue(all(c["usage"] is None for c in chunks[:-1]))
        last = chunks[-1]
        self.assertEqual(last["choices"], [])
        reply = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        self.assertEqual(last["usage"]["completion_tokens"], content.count_tokens(reply))

    def test_paced_by_clock(self) -> None:
        """Chunks arrive as the clock advances, not all at once."""
        app, clock = make_app(Config(responses=ResponsesConfig(stream_interval_ms=100)))
        conn = RawHTTP(app).send("POST", "/v1/chat/completions", dict(CHAT_BODY, stream=True))
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.1)
        self.assertEqual(len(conn.events()), 2)
        clock.advance(0.1)
        self.assertEqual(len(conn.events()), 3)
        clock.pump([0.1] * 100)
        self.assertEqual(conn.events()[-1], "[DONE]")
        self.assertTrue(conn.complete)

    def test_legacy_first_token_waits_the_ttft(self) -> None:
        """Legacy streams: headers at once, then nothing until the time to first token; then one token per interval."""
        app, clock = make_app(Config(responses=ResponsesConfig(stream_interval_ms=100)))
        conn = RawHTTP(app).send("POST", "/v1/completions", {"model": "gpt-4o-mini", "prompt": "Hi", "stream": True})
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.events(), [])
        clock.advance(0.099)
        self.assertEqual(conn.events(), [])
        clock.advance(0.001)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.1)
        self.assertEqual(len(conn.events()), 2)
        clock.pump([0.1] * 100)
        self.assertEqual(conn.events()[-1], "[DONE]")


class StubTreqControlTests(StubCase):
    """Each seed control through ``StubTreq`` on a ``task.Clock`` (the raw-connection tests in
    ``test_faults`` cover the same controls byte by byte, and disconnects)."""

    def test_delay(self) -> None:
        """``?delay=3000``: no response until the clock reaches 3 s."""
        d = self.post(URL + "?delay=3000")
        self.advance(2.9)
        self.assertNoResult(d)
        self.advance(0.1)
        self.assertEqual(self.successResultOf(d).code, 200)

    def test_fail_statuses(self) -> None:
        """``?fail=429`` and ``X-Mock-Fail: 500`` give the seed's errors."""
        response, body = self.body_of(self.post(URL + "?fail=429"))
        self.assertEqual((response.code, body["error"]["type"]), (429, "rate_limit_error"))
        self.assertEqual(response.headers.getRawHeaders("retry-after-ms"), ["1000"])
        d = self.client.post(URL, json=CHAT_BODY, headers={"X-Mock-Fail": "500"})
        self.client.flush()
        response, body = self.body_of(d)
        self.assertEqual((response.code, body["error"]["code"]), (500, "internal_error"))

    def test_timeout(self) -> None:
        """``?fail=timeout``: nothing for 30 s, then 504."""
        d = self.post(URL + "?fail=timeout")
        self.advance(29.9)
        self.assertNoResult(d)
        self.advance(0.1)
        response, body = self.body_of(d)
        self.assertEqual((response.code, validate("ErrorResponse", body)["error"]["type"]), (504, "timeout_error"))

    def test_fail_chunk(self) -> None:
        """``?stream=true&fail_chunk=2``: one good event, then a malformed one, no [DONE]."""
        d = self.post(URL + "?stream=true&fail_chunk=2")
        self.advance(1, steps=50)
        _, raw = self.text_of(d)
        events = parse_sse(raw)
        self.assertEqual(len(events), 2)
        validate("CreateChatCompletionStreamResponse", json.loads(events[0]))
        self.assertRaises(ValueError, json.loads, events[1])

    def test_bad_control(self) -> None:
        """A bad control value is an OpenAI-shaped 400 naming it."""
        response, body = self.body_of(self.post(URL + "?delay=-1"))
        self.assertEqual((response.code, body["error"]["param"]), (400, "delay"))
