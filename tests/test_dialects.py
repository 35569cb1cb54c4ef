"""
The dialects on their own: a reply of several choices, with tool calls, renders as the real API
sends it, whole and streamed, valid against OpenAI's schemas.
"""

from __future__ import annotations

import json

from twisted.trial import unittest

from mockllm.behaviour.reply import Choice, Reply, Stamp, ToolCall
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.completions import TextCompletions
from tests.support import CHAT_BODY, parse_sse, validate

CALL = ToolCall("call_abc123", "get_weather", '{"city": "Paris"}')
REPLY = Reply((
    Choice(("Hello", " there")),
    Choice((), (CALL,), "tool_calls"),
))


class ChatTests(unittest.TestCase):
    """The chat dialect."""

    def setUp(self) -> None:
        self.dialect = ChatCompletions()
        self.request = self.dialect.parse_body(dict(CHAT_BODY, stream=True, stream_options={"include_usage": True}), None)
        self.stamp = Stamp("chatcmpl-x", 1700000000)

    def test_whole(self) -> None:
        """Each choice indexed; a tool-call choice has ``content: null``, its calls and ``tool_calls``."""
        body = validate("CreateChatCompletionResponse", json.loads(self.dialect.render(self.request, REPLY, self.stamp)))
        first, second = body["choices"]
        self.assertEqual((first["index"], first["message"]["content"], first["finish_reason"]), (0, "Hello there", "stop"))
        self.assertIsNone(second["message"]["content"])
        self.assertEqual(second["message"]["tool_calls"],
                         [{"id": "call_abc123", "type": "function",
                           "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}])
        self.assertEqual(second["finish_reason"], "tool_calls")
        self.assertEqual(body["usage"]["completion_tokens"], 2 + CALL.tokens)

    def test_streamed(self) -> None:
        """Streamed: role events first (lead frames), the call opened with its id, name and empty
        arguments, then its arguments in fragments, each choice's finish, the usage event, then ``[DONE]``."""
        frames = list(self.dialect.stream(self.request, REPLY, self.stamp))
        self.assertEqual([f.lead for f in frames[:3]], [True, True, False])
        events = parse_sse(b"".join(f.data for f in frames))
        self.assertEqual(events[-1], "[DONE]")
        chunks = [validate("CreateChatCompletionStreamResponse", json.loads(e)) for e in events[:-1]]
        deltas = [(c["choices"][0]["index"], c["choices"][0]["delta"], c["choices"][0]["finish_reason"])
                  for c in chunks if c["choices"]]
        calls = [d for _, d, _ in deltas if "tool_calls" in d]
        self.assertEqual(calls[0]["tool_calls"][0],
                         {"index": 0, "id": "call_abc123", "type": "function",
                          "function": {"name": "get_weather", "arguments": ""}})
        self.assertGreater(len(calls), 2)
        self.assertEqual([set(c["tool_calls"][0]) for c in calls[1:]], [{"index", "function"}] * (len(calls) - 1))
        self.assertEqual("".join(c["tool_calls"][0]["function"]["arguments"] for c in calls), CALL.arguments)
        self.assertEqual([(i, r) for i, _, r in deltas if r], [(0, "stop"), (1, "tool_calls")])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 2 + CALL.tokens)


class TextTests(unittest.TestCase):
    """The legacy completions dialect."""

    def test_choices_whole_and_streamed(self) -> None:
        """Several choices: each indexed whole and streamed; no lead frame, so the first token is paced."""
        dialect = TextCompletions()
        request = dialect.parse_body({"model": "gpt-4o-mini", "prompt": "Hi", "stream": True}, None)
        reply = Reply((Choice(("a", "b")), Choice(("c",), finish_reason="length")))
        stamp = Stamp("cmpl-x", 1700000000)
        body = validate("CreateCompletionResponse", json.loads(dialect.render(request, reply, stamp)))
        self.assertEqual([(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]],
                         [(0, "ab", "stop"), (1, "c", "length")])
        frames = list(dialect.stream(request, reply, stamp))
        self.assertFalse(any(f.lead for f in frames))
        events = [json.loads(e) for e in parse_sse(b"".join(f.data for f in frames))[:-1]]
        self.assertEqual([(e["choices"][0]["index"], e["choices"][0]["finish_reason"]) for e in events],
                         [(0, None), (0, None), (0, "stop"), (1, None), (1, "length")])


class DumpsTests(unittest.TestCase):
    """``dumps``, the encoder of every answer, writes what ``json.dumps`` writes with the same options."""

    def test_same_as_json_dumps(self) -> None:
        """Objects, arrays, strings with quotes, controls and non-ASCII text, numbers, floats, None and
        booleans come out byte for byte as ``json.dumps(separators=(",", ":"), ensure_ascii=False)``."""
        from mockllm.dialects.openai import dumps

        values = [
            {"a": [1, 2.5, -0.0, 1e300, None, True, False], "b": {"c": "x\"y\\z\n\t\u0001é中😀"}},
            [], {}, "plain", "é", 3, 1.5, None, [{"k": [{"deep": ["er"]}]}], {"1": 1, "": ""},
        ]
        for value in values:
            self.assertEqual(dumps(value), json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    def test_refuses_what_json_refuses(self) -> None:
        """A value JSON cannot hold is a TypeError, as from ``json.dumps``."""
        from mockllm.dialects.openai import dumps

        with self.assertRaises(TypeError):
            dumps({"x": object()})
