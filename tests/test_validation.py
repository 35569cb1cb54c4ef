"""
Bad input: every client mistake gets a 400 in OpenAI's error shape whose
message and ``param`` name the problem, never a 5xx, and the server keeps
serving afterwards.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mockllm.scenario import ScenarioRunner, define, discover
from tests.support import CHAT_BODY, RawHTTP, make_app, validate

PATH = "/v1/chat/completions"


class BadInputTests(unittest.TestCase):
    """Each kind of bad input, and what the server says about it."""

    def setUp(self) -> None:
        self.app, self.clock = make_app()

    def refused(self, body: object, path: str = PATH, headers: dict | None = None) -> dict:
        """Send ``body``; assert a schema-valid 400 and return its error object."""
        conn = RawHTTP(self.app).send("POST", path, body, headers)
        self.assertEqual(conn.status, 400, conn.raw)
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertEqual(error["type"], "invalid_request_error")
        return error

    def still_serving(self) -> None:
        """A good request after the bad one still succeeds."""
        conn = RawHTTP(self.app).send("POST", PATH, CHAT_BODY)
        self.assertEqual(conn.status, 200)

    def test_malformed_json(self) -> None:
        """Unparseable JSON is refused with the real API's hint."""
        error = self.refused(b'{"model": "gpt-4o-mini", ')
        self.assertIn("could not parse the JSON body", error["message"])
        self.still_serving()

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 are refused like malformed JSON."""
        self.assertIn("could not parse", self.refused(b"\xff\xfe\x00")["message"])

    def test_not_an_object(self) -> None:
        """A JSON array is not a request body."""
        self.assertIn("expected an object", self.refused([1, 2])["message"])

    def test_missing_messages(self) -> None:
        """``messages`` is required."""
        error = self.refused({"model": "gpt-4o-mini"})
        self.assertEqual((error["param"], error["code"]), ("messages", "missing_required_parameter"))

    def test_empty_messages(self) -> None:
        """``messages`` may not be empty."""
        error = self.refused({"model": "gpt-4o-mini", "messages": []})
        self.assertEqual((error["param"], error["code"]), ("messages", "empty_array"))

    def test_missing_model(self) -> None:
        """``model`` is required."""
        self.assertEqual(self.refused({"messages": CHAT_BODY["messages"]})["param"], "model")

    def test_wrong_types(self) -> None:
        """Wrong JSON types are named down to the offending field."""
        cases = {
            "messages": dict(CHAT_BODY, messages="hi"),
            "messages[0]": dict(CHAT_BODY, messages=["hi"]),
            "messages[0].content": dict(CHAT_BODY, messages=[{"role": "user", "content": 5}]),
            "messages[0].role": dict(CHAT_BODY, messages=[{"role": "wizard", "content": "x"}]),
            "model": dict(CHAT_BODY, model=4),
            "stream": dict(CHAT_BODY, stream="yes"),
            "temperature": dict(CHAT_BODY, temperature=3),
            "max_tokens": dict(CHAT_BODY, max_tokens=1.5),
            "stop": dict(CHAT_BODY, stop=[1]),
            "stream_options": dict(CHAT_BODY, stream_options={"include_usage": True}),
        }
        for param, body in cases.items():
            self.assertEqual(self.refused(body)["param"], param, body)
        self.still_serving()

    def test_text_prompt_type(self) -> None:
        """A legacy completion's ``prompt`` must be text or tokens."""
        error = self.refused({"model": "gpt-4", "prompt": {"a": 1}}, "/v1/completions")
        self.assertEqual(error["param"], "prompt")

    def test_bad_controls(self) -> None:
        """Unknown fail values, bad delays and fail_chunk < 1 are named."""
        cases = {
            "?fail=explode": "fail",
            "?fail=200": "fail",
            "?delay=-5": "delay",
            "?delay=soon": "delay",
            "?delay=600001": "delay",
            "?fail_chunk=0": "fail_chunk",
            "?fail_chunk=x": "fail_chunk",
            "?stream=maybe": "stream",
            "?fail=429&retry_after=-1": "retry_after",
        }
        for query, param in cases.items():
            self.assertEqual(self.refused(CHAT_BODY, PATH + query)["param"], param, query)
        self.still_serving()

    def test_delay_cap_is_documented_value(self) -> None:
        """The cap message names the cap, 600000 ms by default."""
        self.assertIn("600000 ms", self.refused(CHAT_BODY, PATH + "?delay=700000")["message"])

    def test_bad_header_control(self) -> None:
        """A bad ``X-Mock-Fail`` header is refused like the query form."""
        self.assertEqual(self.refused(CHAT_BODY, headers={"X-Mock-Fail": "nope"})["param"], "fail")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_bodies = st.one_of(
    _json,
    st.fixed_dictionaries({"model": _json, "messages": _json}),
    st.fixed_dictionaries({"model": st.just("gpt-4o"), "messages": st.lists(_json, min_size=1, max_size=3)}),
    st.fixed_dictionaries(
        {"model": st.just("gpt-4o"), "messages": st.just(CHAT_BODY["messages"]), "stream": _json, "stream_options": _json}
    ),
)


class FuzzTests(unittest.TestCase):
    """Arbitrary JSON bodies never produce a 5xx."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_bodies)
    def test_never_5xx(self, body: object) -> None:
        """Whatever the body, the answer is 200 or an OpenAI-shaped 4xx."""
        app, clock = make_app()
        conn = RawHTTP(app).send("POST", PATH, json.dumps(body).encode())
        clock.pump([0.05] * 400)
        self.assertIn(conn.status, (200, 400, 404))
        if conn.status != 200:
            validate("ErrorResponse", conn.json())


class HostileInputTests(unittest.TestCase):
    """Odd bytes and numbers that once produced HTML 500s: each is an OpenAI-shaped 4xx now."""

    def setUp(self) -> None:
        self.app, self.clock = make_app()

    def raw(self, head: bytes, body: bytes = b"") -> RawHTTP:
        """Send a hand-made request (``head`` without the final blank line)."""
        conn = RawHTTP(self.app)
        conn.protocol.dataReceived(head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return conn

    def refused(self, conn: RawHTTP, param: str | None) -> None:
        """Assert a schema-valid 400 naming ``param``."""
        self.assertEqual(conn.status, 400, conn.raw)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["param"], param)

    def test_unicode_digits_in_controls(self) -> None:
        """Superscript, full-width and underscored digits are not numbers here."""
        for query, param in (("fail=%C2%B2", "fail"), ("delay=1_000", "delay"), ("fail=%EF%BC%94%EF%BC%92%EF%BC%99", "fail"),
                             ("fail_chunk=%C2%B2", "fail_chunk"), ("delay=" + "9" * 400, "delay")):
            conn = RawHTTP(self.app).send("POST", f"{PATH}?{query}", CHAT_BODY)
            self.refused(conn, param)

    def test_retry_after_checked_alone_and_capped(self) -> None:
        """``retry_after`` is checked even without ``fail``, and capped like ``delay``."""
        self.refused(RawHTTP(self.app).send("POST", PATH + "?retry_after=abc", CHAT_BODY), "retry_after")
        self.refused(RawHTTP(self.app).send("POST", PATH + "?fail=429&retry_after=" + "9" * 400, CHAT_BODY), "retry_after")

    def test_deep_json(self) -> None:
        """A body nested too deep for the parser is malformed JSON, not a crash."""
        conn = RawHTTP(self.app).send("POST", PATH, b"[" * 100_000 + b"]" * 100_000)
        self.refused(conn, None)

    def test_nan(self) -> None:
        """``NaN`` is not JSON."""
        self.refused(RawHTTP(self.app).send("POST", PATH, b'{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"temperature":NaN}'), None)

    def test_non_utf8_headers(self) -> None:
        """A control header that is not UTF-8 is refused; a key that is not UTF-8 is just a key."""
        body = json.dumps(CHAT_BODY).encode()
        conn = self.raw(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Mock-Fail: \xff", body)
        self.refused(conn, "fail")
        conn = self.raw(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Mock-Key: \xff", body)
        self.assertEqual(conn.status, 200)
        runner = ScenarioRunner(define(discover().scenarios), self.clock, seed=0)
        self.app, self.clock = make_app(scenarios=runner)
        conn = self.raw(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Mock-Scenario: \xfe", body)
        self.refused(conn, "X-Mock-Scenario")

    def test_non_utf8_path(self) -> None:
        """A path that is not UTF-8 gets a JSON 400 with the common headers, not Klein's HTML."""
        conn = RawHTTP(self.app).send("GET", "/v1/models/%ff")
        self.refused(conn, None)
        self.assertIn("x-request-id", conn.headers)


class QueryOnlyControlsTests(unittest.TestCase):
    """Controls come from the query string and headers, never from a form-encoded body."""

    def setUp(self) -> None:
        self.app, self.clock = make_app()

    def test_body_text_is_not_a_control(self) -> None:
        """curl -d sends form-urlencoded by default; a prompt with ``&delay=5`` is still just a prompt."""
        body = dict(CHAT_BODY, messages=[{"role": "user", "content": "see https://x.org/?q=1&delay=5&fail=none&y="}])
        conn = RawHTTP(self.app).send(
            "POST", PATH + "?fail=429", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(conn.status, 429)


class StreamQueryTests(unittest.TestCase):
    """``?stream=true`` is the same as ``"stream": true``."""

    def test_stream_options_with_query_stream(self) -> None:
        """The body's ``stream_options`` is valid when the query turns streaming on."""
        app, clock = make_app()
        body = dict(CHAT_BODY, stream_options={"include_usage": True})
        conn = RawHTTP(app).send("POST", PATH + "?stream=true", body)
        clock.pump([0.05] * 200)
        chunks = [json.loads(e) for e in conn.events()[:-1]]
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertGreater(chunks[-1]["usage"]["completion_tokens"], 0)


class BodyLimitTests(unittest.TestCase):
    """``max_body_bytes``: an oversized body is refused before it is parsed."""

    def test_413(self) -> None:
        """A body over the limit gets 413 request_too_large; one at the limit is parsed as usual."""
        from mockllm.config import Config, ServerConfig

        app, _ = make_app(Config(server=ServerConfig(max_body_bytes=100)))
        conn = RawHTTP(app).send("POST", PATH, b"{" + b" " * 100 + b"}")
        self.assertEqual(conn.status, 413)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["code"], "request_too_large")
        conn = RawHTTP(app).send("POST", PATH, b"[" + b" " * 98 + b"]")
        self.assertEqual(conn.status, 400)
