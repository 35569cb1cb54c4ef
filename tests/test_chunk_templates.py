"""
Pre-serialised stream events: what the chat, text and Responses streams make from bytes encoded
once per stream is exactly what serialising each whole event would give (compact JSON, UTF-8,
the same key order), whatever the text holds.
"""

from __future__ import annotations

import json
import random

from twisted.trial import unittest

from mockllm.behaviour.compose import compose
from mockllm.behaviour.reply import Choice, Reply, Stamp
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.completions import TextCompletions
from mockllm.dialects.openai import ChunkTemplate, data_event, dumps, json_text, usage_fields, usage_json
from mockllm.dialects.responses import Responses

#: Pieces that need escaping or are outside ASCII.
AWKWARD = ('"quoted"', "back\\slash", "tab\tnew\nline", "\x00\x1f", "é ü 漢字 🙂", "\u2028\u2029", "</script>")
STAMP = Stamp("chatcmpl-ABCDEFGHIJKLMNOPQRSTUVWXYZ012", 1700000000)


def reserialised(event: bytes) -> bytes:
    """``event`` decoded and encoded again as a whole: what serialising the whole event gives."""
    if event.startswith(b"event: "):
        name, _, data = event.partition(b"\n")
        return name + b"\n" + data_event(json.loads(data[len(b"data: ") :]))[:-2] + b"\n\n"
    return data_event(json.loads(event[len(b"data: ") :]))


class TemplateTests(unittest.TestCase):
    """The template and the string encoder on their own."""

    def test_json_text(self) -> None:
        """A piece is encoded as ``dumps`` encodes it."""
        for text in AWKWARD:
            self.assertEqual(json_text(text), dumps(text))

    def test_event_is_the_whole_object(self) -> None:
        """``prefix + choice + suffix`` is the bytes of the whole object, with and without ``usage``."""
        head = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        choice = {"index": 0, "delta": {"content": "hi"}}
        self.assertEqual(ChunkTemplate.of(head, False).event(dumps(choice)), data_event(dict(head, choices=[choice])))
        self.assertEqual(
            ChunkTemplate.of(head, True).event(dumps(choice)), data_event(dict(head, choices=[choice], usage=None))
        )
        self.assertEqual(
            ChunkTemplate.of(head, True).usage_event(dumps({"total_tokens": 3})),
            data_event(dict(head, choices=[], usage={"total_tokens": 3})),
        )


class WholeBytesTests(unittest.TestCase):
    """A whole (not streamed) answer, written around the JSON of its choices, is the bytes of its object."""

    def test_whole_answers(self) -> None:
        """Chat and text answers, several choices, awkward text and model names: the object
        serialised whole, its fields in the real API's order."""
        order = ["id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"]
        reply = Reply((Choice(AWKWARD), Choice(AWKWARD[::-1], finish_reason="length")))
        for dialect, body in (
            (ChatCompletions(), {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            (ChatCompletions(), {"model": "m\"é漢", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            (TextCompletions(), {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "n": 2}),
        ):
            answer = dialect.render(dialect.parse_body(body, False), reply, STAMP)
            decoded = json.loads(answer)
            self.assertEqual(answer, dumps(decoded))
            self.assertEqual(list(decoded), order)
            self.assertEqual((decoded["id"], decoded["created"], decoded["model"]), (STAMP.id, STAMP.created, body["model"]))
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for extra in ({"logprobs": True, "top_logprobs": 2}, {"tools": tools, "tool_choice": "required"}):
            request = ChatCompletions().parse_body(dict(chat, **extra), False)
            answer = ChatCompletions().render(request, compose(request, random.Random(3)), STAMP)
            self.assertEqual(answer, dumps(json.loads(answer)))
            self.assertTrue(json.loads(answer)["choices"][0]["logprobs"] or json.loads(answer)["choices"][0]["message"]["tool_calls"])

    def test_plain_choice_as_the_general_one(self) -> None:
        """A plain choice written around its text is the bytes the general path (``_message``) encodes."""
        from mockllm.dialects.chat import _choice_json, _message

        for choice in (Choice(AWKWARD), Choice(("hi",), finish_reason="length"), Choice()):
            general = {"index": 3, "message": _message(choice), "logprobs": None, "finish_reason": choice.finish_reason}
            self.assertEqual(_choice_json(3, choice), dumps(general))

    def test_usage(self) -> None:
        """``usage_json`` is the bytes of ``usage_fields``."""
        request = ChatCompletions().parse_body({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}, False)
        for completion in (0, 1, 12345):
            self.assertEqual(usage_json(request, completion), dumps(usage_fields(request.prompt_tokens, completion)))


class StreamBytesTests(unittest.TestCase):
    """Every event of a stream is the bytes of its whole object."""

    def events(self, dialect, body: dict, reply: Reply | None = None) -> list[bytes]:
        """The stream's events for ``body`` (and ``reply``, else one composed with a fixed seed)."""
        request = dialect.parse_body(body, True)
        reply = reply if reply is not None else compose(request, random.Random(3))
        return [frame.data for frame in dialect.stream(request, reply, STAMP)]

    def assertWhole(self, events: list[bytes]) -> None:
        """Each event but ``[DONE]`` equals its decoded object serialised whole."""
        for event in events:
            if event != b"data: [DONE]\n\n":
                self.assertEqual(event, reserialised(event))

    def test_chat(self) -> None:
        """Chat content events, with usage, several choices and log probabilities."""
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        reply = Reply((Choice(AWKWARD), Choice(AWKWARD[::-1], finish_reason="length")))
        events = self.events(ChatCompletions(), dict(chat, n=2, stream_options={"include_usage": True}), reply)
        self.assertWhole(events)
        self.assertIn(json_text("é ü 漢字 🙂"), b"".join(events))
        self.assertWhole(self.events(ChatCompletions(), dict(chat, n=2, logprobs=True, top_logprobs=2)))

    def test_text(self) -> None:
        """Legacy text events, with usage and with log probabilities."""
        text = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
        self.assertWhole(self.events(TextCompletions(), dict(text, stream_options={"include_usage": True}), Reply((Choice(AWKWARD),))))
        self.assertWhole(self.events(TextCompletions(), dict(text, n=2, logprobs=2)))

    def test_responses(self) -> None:
        """Responses API text and function-call argument deltas."""
        events = self.events(Responses(), {"model": "gpt-4o-mini", "input": "hi"}, Reply((Choice(AWKWARD),)))
        self.assertWhole(events)
        numbers = [json.loads(event.partition(b"\ndata: ")[2])["sequence_number"] for event in events]
        self.assertEqual(numbers, list(range(len(events))))
        tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
        self.assertWhole(self.events(Responses(), {"model": "gpt-4o-mini", "input": "hi", "tools": tools, "tool_choice": "required"}))
