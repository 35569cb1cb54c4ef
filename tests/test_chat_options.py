"""
In-memory tests of the chat (and legacy text) generation options: ``n``, ``max_tokens``,
``stop``, ``seed``, ``logprobs``, tools and ``tool_choice``, ``response_format``, ``usage``:
the schema generator and :func:`~mockllm.behaviour.compose.compose` on their own, then the
routes through ``StubTreq`` with every body validated against OpenAI's schemas, and the real
API's 400s for bad options.
"""

from __future__ import annotations

import json
import random
from typing import Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel
from twisted.trial import unittest

from mockllm.behaviour.compose import compose, mentions
from mockllm.behaviour.content import prompt_tokens
from mockllm.behaviour.engine import Engine
from mockllm.behaviour.plan import Plan
from mockllm.behaviour.reply import Choice, Reply
from mockllm.behaviour.request import CompletionRequest, Tool
from mockllm.behaviour.schemagen import instance
from mockllm.dialects.chat import ChatCompletions
from tests.support import CHAT_BODY, validate
from tests.test_chat import StubCase

TEXT_URL = "http://localhost/v1/completions"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Forecast for a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                       "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^ord_[0-9]{6}$"}},
                                                      "required": ["order_id"]}}},
]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL_ID = r"^call_[A-Za-z0-9]{24}$"


class Step(BaseModel):
    """A pydantic model as ``.parse()`` users write them."""

    explanation: str
    output: str


class Solution(BaseModel):
    """Nested, with a list, an optional and a literal-free enum of steps."""

    steps: list[Step]
    final_answer: str
    confidence: Optional[float]


class Tree(BaseModel):
    """A recursive model (``$defs`` and ``$ref``)."""

    name: str
    children: list["Tree"]


def chat_request(**body) -> CompletionRequest:
    """The request model of a chat body (``CHAT_BODY`` with ``body`` on top)."""
    return ChatCompletions().parse_body(dict(CHAT_BODY, **body), None)


def valid(schema, value) -> bool:
    """Whether ``value`` validates against ``schema``."""
    return Draft202012Validator(schema).is_valid(value)


# --- schemas -> instances ---------------------------------------------------------------------

_LEAVES = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-1000, 1000), st.integers(0, 50)),
    st.builds(lambda lo, step: {"type": "integer", "minimum": lo, "maximum": lo + 10 * step, "multipleOf": step},
              st.integers(-50, 50), st.integers(1, 9)),
    st.builds(lambda lo: {"type": "number", "exclusiveMinimum": lo, "maximum": lo + 5}, st.integers(-100, 100)),
    st.builds(lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
              st.integers(0, 30), st.integers(0, 30)),
    st.sampled_from([{"type": "string", "format": f} for f in ("date-time", "date", "email", "uuid", "uri", "ipv4")]),
    st.just({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2,4}$"}),
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True).map(lambda e: {"enum": e}),
    st.integers().map(lambda c: {"const": c}),
)


def _compound(children):
    objects = st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {"type": "object", "properties": props, "required": required,
                                      **({"additionalProperties": False} if closed else {})},
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.builds(lambda items, lo: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + 3},
                       children, st.integers(0, 3))
    unions = st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": options})
    nullable = children.map(lambda c: {**c, "type": [c["type"], "null"]} if isinstance(c.get("type"), str) else c)
    return st.one_of(objects, arrays, unions, nullable)


SCHEMAS = st.recursive(_LEAVES, _compound, max_leaves=12)


class SchemaInstanceTests(unittest.TestCase):
    """:func:`instance` draws values valid against the schema, the same for the same generator."""

    @settings(max_examples=300, deadline=None)
    @given(SCHEMAS, st.integers(0, 2**32))
    def test_drawn_values_validate(self, schema, seed) -> None:
        """Any schema built from the supported keywords gets a value that validates against it."""
        value = instance(schema, random.Random(seed))
        self.assertTrue(valid(schema, value), (schema, value))

    def test_pydantic_strict_schemas(self) -> None:
        """Schemas as the SDK sends them for ``.parse()`` (nested, ``$defs``, recursive) are honoured."""
        for model in (Solution, Tree, Step):
            schema = to_strict_json_schema(model)
            for seed in range(50):
                value = instance(schema, random.Random(seed))
                self.assertTrue(valid(schema, value), value)
                model.model_validate(value)

    def test_same_seed_same_value(self) -> None:
        """The same generator state gives the same value; other seeds give others."""
        schema = to_strict_json_schema(Solution)
        first = instance(schema, random.Random(7))
        self.assertEqual(first, instance(schema, random.Random(7)))
        self.assertGreater(len({json.dumps(instance(schema, random.Random(s))) for s in range(20)}), 1)

    def test_empty_parameters_give_an_object(self) -> None:
        """A function without ``parameters`` (``{}``) gets the arguments ``{}``: an object."""
        self.assertEqual(instance({}, random.Random(1)), {})


# --- compose -----------------------------------------------------------------------------------


class ComposeTests(unittest.TestCase):
    """:func:`compose` makes the whole reply from the request's options."""

    def test_n_choices_each_drawn(self) -> None:
        """``n`` choices, each from its own draw (they are not all the same)."""
        reply = compose(chat_request(n=8), random.Random(1))
        self.assertEqual(len(reply.choices), 8)
        self.assertGreater(len({c.text for c in reply.choices}), 1)

    def test_max_tokens_cuts_with_length(self) -> None:
        """Each choice has at most ``max_tokens`` pieces and finishes with ``length`` when cut."""
        for limit in (1, 3, 7):
            reply = compose(chat_request(n=3, max_completion_tokens=limit), random.Random(limit))
            for choice in reply.choices:
                self.assertEqual((len(choice.pieces), choice.finish_reason), (limit, "length"))
                self.assertLessEqual(choice.tokens, limit)
            self.assertEqual(reply.completion_tokens, 3 * limit)

    def test_max_tokens_above_the_text_stops(self) -> None:
        """A limit the text fits in changes nothing: ``stop``."""
        choice = compose(chat_request(max_tokens=1000), random.Random(1)).choices[0]
        self.assertEqual(choice.finish_reason, "stop")

    def test_stop_sequences(self) -> None:
        """The text ends before the first of the stop sequences, finishing with ``stop``."""
        whole = compose(chat_request(seed=5), random.Random()).choices[0].text
        word = whole.split()[3]
        choice = compose(chat_request(seed=5, stop=["zzz", word]), random.Random()).choices[0]
        self.assertEqual(choice.text, whole[: whole.index(word)])
        self.assertEqual(choice.finish_reason, "stop")

    def test_seed(self) -> None:
        """The same request with the same seed gets the same choices whatever the server's generator;
        another seed gets others."""
        first = compose(chat_request(n=4, seed=42, logprobs=True), random.Random(1))
        again = compose(chat_request(n=4, seed=42, logprobs=True), random.Random(2))
        other = compose(chat_request(n=4, seed=43, logprobs=True), random.Random(1))
        self.assertEqual(first, again)
        self.assertNotEqual([c.text for c in first.choices], [c.text for c in other.choices])

    def test_logprobs(self) -> None:
        """One entry per piece, whose tokens concatenate to the text, each with ``top_logprobs``
        alternatives, the chosen token first and likeliest."""
        choice = compose(chat_request(logprobs=True, top_logprobs=5), random.Random(3)).choices[0]
        self.assertEqual("".join(e.token for e in choice.logprobs), choice.text)
        for entry in choice.logprobs:
            self.assertLessEqual(entry.logprob, 0)
            self.assertEqual(len(entry.top), 5)
            self.assertEqual(entry.top[0].token, entry.token)
            self.assertEqual(len({alt.token for alt in entry.top}), 5)
            self.assertEqual([a.logprob for a in entry.top], sorted((a.logprob for a in entry.top), reverse=True))

    def test_logprobs_do_not_change_the_text(self) -> None:
        """Asking for log probabilities leaves a seeded text as it was."""
        plain = compose(chat_request(seed=9, n=2), random.Random()).choices
        scored = compose(chat_request(seed=9, n=2, logprobs=True, top_logprobs=3), random.Random()).choices
        self.assertEqual([c.text for c in plain], [c.text for c in scored])
        self.assertIsNone(plain[0].logprobs)

    def test_required_calls_a_tool(self) -> None:
        """``required``: a call with a ``call_`` id and arguments valid against the function's schema."""
        reply = compose(chat_request(tools=TOOLS, tool_choice="required", messages=[{"role": "user", "content": "Hi"}]),
                        random.Random(2))
        choice = reply.choices[0]
        self.assertEqual((choice.pieces, choice.finish_reason), ((), "tool_calls"))
        (call,) = choice.tool_calls
        self.assertRegex(call.id, CALL_ID)
        schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.name)
        self.assertTrue(valid(schema, json.loads(call.arguments)))

    def test_named_tool(self) -> None:
        """A named function is called, finishing with ``stop`` as the real API does."""
        choice = {"type": "function", "function": {"name": "lookup_order"}}
        for seed in range(10):
            reply = compose(chat_request(tools=TOOLS, tool_choice=choice, messages=ASK_WEATHER), random.Random(seed))
            (call,) = reply.choices[0].tool_calls
            self.assertEqual((call.name, reply.choices[0].finish_reason), ("lookup_order", "stop"))
            self.assertRegex(json.loads(call.arguments)["order_id"], "^ord_[0-9]{6}$")

    def test_auto_calls_the_mentioned_tool(self) -> None:
        """``auto``: a message that mentions a tool gets a call to it; one that mentions none gets text."""
        called = compose(chat_request(tools=TOOLS, messages=ASK_WEATHER), random.Random(1)).choices[0]
        self.assertEqual([c.name for c in called.tool_calls], ["get_weather"])
        talked = compose(chat_request(tools=TOOLS, messages=[{"role": "user", "content": "Hello"}]), random.Random(1))
        self.assertEqual((talked.choices[0].tool_calls, talked.choices[0].finish_reason), ((), "stop"))
        self.assertTrue(talked.choices[0].text)

    def test_mentions(self) -> None:
        """A tool is mentioned by its name, a word of its name, or a distinctive word of its description."""
        tool = Tool("get_current_weather", "Returns the forecast for a location")
        self.assertTrue(mentions("call get_current_weather now", tool))
        self.assertTrue(mentions("Is the WEATHER nice?", tool))
        self.assertTrue(mentions("tomorrow's forecast please", tool))
        self.assertFalse(mentions("get me the current time", tool))

    def test_parallel_calls(self) -> None:
        """A message mentioning two tools gets both with ``parallel_tool_calls``, one without."""
        messages = [{"role": "user", "content": "Weather in Paris, and lookup my order please"}]
        both = compose(chat_request(tools=TOOLS, messages=messages), random.Random(1)).choices[0]
        self.assertEqual([c.name for c in both.tool_calls], ["get_weather", "lookup_order"])
        self.assertEqual(len({c.id for c in both.tool_calls}), 2)
        one = compose(chat_request(tools=TOOLS, messages=messages, parallel_tool_calls=False), random.Random(1))
        self.assertEqual([c.name for c in one.choices[0].tool_calls], ["get_weather"])

    def test_none_and_after_tool_give_text(self) -> None:
        """``none`` never calls; ``auto`` after a tool's result answers in text."""
        none = compose(chat_request(tools=TOOLS, tool_choice="none", messages=ASK_WEATHER), random.Random(1))
        self.assertEqual(none.choices[0].tool_calls, ())
        follow_up = ASK_WEATHER + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "weather: sunny, 21C"},
        ]
        request = chat_request(tools=TOOLS, messages=follow_up)
        self.assertTrue(request.after_tool)
        answer = compose(request, random.Random(1)).choices[0]
        self.assertEqual((answer.tool_calls, answer.finish_reason), ((), "stop"))
        self.assertTrue(answer.text)

    def test_tool_calls_within_max_tokens(self) -> None:
        """A call longer than ``max_tokens`` is cut there, finishing with ``length``."""
        request = chat_request(tools=TOOLS, tool_choice="required", max_tokens=4, messages=ASK_WEATHER)
        choice = compose(request, random.Random(1)).choices[0]
        self.assertEqual(choice.finish_reason, "length")
        self.assertLessEqual(choice.tokens, 4)

    def test_json_object(self) -> None:
        """``json_object``: the text is a JSON object."""
        request = chat_request(response_format={"type": "json_object"}, messages=[{"role": "user", "content": "Answer in JSON"}])
        for choice in compose(dict_n(request, 3), random.Random(1)).choices:
            self.assertIsInstance(json.loads(choice.text), dict)

    def test_json_schema(self) -> None:
        """``json_schema``: the text validates against the schema (here the SDK's for a pydantic model)."""
        schema = to_strict_json_schema(Solution)
        fmt = {"type": "json_schema", "json_schema": {"name": "Solution", "schema": schema, "strict": True}}
        request = chat_request(response_format=fmt, n=5)
        for choice in compose(request, random.Random(4)).choices:
            Solution.model_validate_json(choice.text)
            self.assertTrue(valid(schema, json.loads(choice.text)))


def dict_n(request: CompletionRequest, n: int) -> CompletionRequest:
    """``request`` asking for ``n`` choices."""
    from dataclasses import replace

    return replace(request, n=n)


class EngineReplyTests(unittest.TestCase):
    """The engine composes every reply; a plan's whole Reply goes out as it is."""

    def test_fixed_text_still_cut(self) -> None:
        """A plan's fixed text (a scenario's) is still cut to ``max_tokens`` and repeated for ``n``."""
        plan = Plan(content="one two three four five six")
        reply = Engine.reply(plan, chat_request(n=2, max_tokens=3), random.Random())
        self.assertEqual([c.text for c in reply.choices], ["one two three"] * 2)
        self.assertEqual({c.finish_reason for c in reply.choices}, {"length"})

    def test_whole_reply_as_is(self) -> None:
        """A plan's whole :class:`Reply` is not touched by the request's options."""
        whole = Reply((Choice(("a", "b", "c", "d")),))
        self.assertIs(Engine.reply(Plan(content=whole), chat_request(n=3, max_tokens=1), random.Random()), whole)


# --- over the routes ---------------------------------------------------------------------------


class ChatRouteTests(StubCase):
    """The options through ``/v1/chat/completions``, every body valid against the schemas."""

    def chat(self, **body):
        """POST a chat body; its status and JSON."""
        response, obj = self.body_of(self.post(body=dict(CHAT_BODY, **body)))
        return response.code, obj

    def stream(self, **body) -> list[dict]:
        """POST a streamed chat body; its chunks, each validated (``[DONE]`` checked and dropped)."""
        d = self.post(body=dict(CHAT_BODY, stream=True, **body))
        self.advance(5, steps=500)
        _, raw = self.text_of(d)
        events = [e for e in raw.decode().split("\n\n") if e]
        self.assertEqual(events[-1], "data: [DONE]")
        return [validate("CreateChatCompletionStreamResponse", json.loads(e[len("data: "):])) for e in events[:-1]]

    def test_n_whole(self) -> None:
        """``n: 3``: three choices indexed 0..2, each finishing; usage counts them all."""
        code, body = self.chat(n=3)
        self.assertEqual(code, 200)
        validate("CreateChatCompletionResponse", body)
        self.assertEqual([c["index"] for c in body["choices"]], [0, 1, 2])
        self.assertTrue(all(c["finish_reason"] == "stop" for c in body["choices"]))
        total = sum(len(content_pieces(c["message"]["content"])) for c in body["choices"])
        self.assertEqual(body["usage"]["completion_tokens"], total)

    def test_n_streamed(self) -> None:
        """Streamed ``n: 2``: every chunk has one choice; each index gets its role, content and finish."""
        chunks = self.stream(n=2, max_tokens=4, stream_options={"include_usage": True})
        by_index: dict[int, list] = {0: [], 1: []}
        for chunk in chunks[:-1]:
            (choice,) = chunk["choices"]
            by_index[choice["index"]].append(choice)
        for choices in by_index.values():
            self.assertEqual(choices[0]["delta"]["role"], "assistant")
            self.assertEqual(choices[-1]["finish_reason"], "length")
            self.assertEqual(len([c for c in choices if c["delta"].get("content")]), 4)
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 8)

    def test_max_tokens(self) -> None:
        """``max_tokens: 3``: three tokens, ``length``, ``usage.completion_tokens`` 3."""
        _, body = self.chat(max_tokens=3)
        validate("CreateChatCompletionResponse", body)
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        self.assertEqual(len(content_pieces(body["choices"][0]["message"]["content"])), 3)
        self.assertEqual(body["usage"]["completion_tokens"], 3)

    def test_stop(self) -> None:
        """``stop``: the content ends before the stop sequence and never contains it."""
        _, whole = self.chat(seed=11)
        text = whole["choices"][0]["message"]["content"]
        _, body = self.chat(seed=11, stop=" ")
        self.assertEqual(body["choices"][0]["message"]["content"], text.split(" ")[0])
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")

    def test_seed(self) -> None:
        """The same body with the same seed gets the same choices (ids differ)."""
        first, second = self.chat(seed=5, n=2)[1], self.chat(seed=5, n=2)[1]
        self.assertEqual(first["choices"], second["choices"])
        self.assertNotEqual(first["id"], second["id"])

    def test_logprobs_whole(self) -> None:
        """``choices[].logprobs.content``: token, logprob, bytes, top_logprobs; tokens make the content."""
        _, body = self.chat(logprobs=True, top_logprobs=3)
        validate("CreateChatCompletionResponse", body)
        choice = body["choices"][0]
        content = choice["logprobs"]["content"]
        self.assertEqual("".join(e["token"] for e in content), choice["message"]["content"])
        for entry in content:
            self.assertEqual(bytes(entry["bytes"]).decode(), entry["token"])
            self.assertEqual(len(entry["top_logprobs"]), 3)

    def test_logprobs_streamed(self) -> None:
        """Streamed, each content chunk carries the logprobs of its own piece."""
        chunks = self.stream(logprobs=True, top_logprobs=2)
        content = [c["choices"][0] for c in chunks if c["choices"][0]["delta"].get("content")]
        self.assertTrue(content)
        for choice in content:
            (entry,) = choice["logprobs"]["content"]
            self.assertEqual(entry["token"], choice["delta"]["content"])
            self.assertEqual(len(entry["top_logprobs"]), 2)

    def test_tool_call_whole(self) -> None:
        """``required``: ``content: null``, a ``tool_calls`` entry with valid arguments, ``tool_calls``."""
        _, body = self.chat(tools=TOOLS, tool_choice="required", messages=ASK_WEATHER)
        validate("CreateChatCompletionResponse", body)
        choice = body["choices"][0]
        self.assertIsNone(choice["message"]["content"])
        self.assertEqual(choice["finish_reason"], "tool_calls")
        (call,) = choice["message"]["tool_calls"]
        self.assertRegex(call["id"], CALL_ID)
        self.assertEqual((call["type"], call["function"]["name"]), ("function", "get_weather"))
        self.assertTrue(valid(WEATHER, json.loads(call["function"]["arguments"])))

    def test_tool_call_streamed(self) -> None:
        """Streamed as the real API: an opening delta (index, id, type, name, ``arguments: ""``), then
        argument fragments by index only, then an empty delta with the finish reason."""
        chunks = self.stream(tools=TOOLS, tool_choice="required", messages=ASK_WEATHER)
        choices = [c["choices"][0] for c in chunks]
        self.assertEqual(choices[0]["delta"], {"role": "assistant", "content": None, "refusal": None})
        opening = choices[1]["delta"]["tool_calls"][0]
        self.assertEqual(opening["function"], {"name": "get_weather", "arguments": ""})
        self.assertEqual((opening["index"], opening["type"]), (0, "function"))
        self.assertRegex(opening["id"], CALL_ID)
        fragments = [c["delta"]["tool_calls"][0] for c in choices[2:-1]]
        self.assertGreater(len(fragments), 1)
        self.assertTrue(all(set(f) == {"index", "function"} and f["index"] == 0 for f in fragments))
        arguments = "".join(f["function"]["arguments"] for f in fragments)
        self.assertTrue(valid(WEATHER, json.loads(arguments)))
        self.assertEqual((choices[-1]["delta"], choices[-1]["finish_reason"]), ({}, "tool_calls"))

    def test_response_format_json_schema(self) -> None:
        """``json_schema``: the content validates against the schema."""
        fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": True}}
        _, body = self.chat(response_format=fmt)
        validate("CreateChatCompletionResponse", body)
        self.assertTrue(valid(WEATHER, json.loads(body["choices"][0]["message"]["content"])))

    def test_prompt_tokens_count_tools(self) -> None:
        """``usage.prompt_tokens`` counts the messages and the tool definitions, with the details objects."""
        _, plain = self.chat(messages=ASK_WEATHER)
        _, tooled = self.chat(messages=ASK_WEATHER, tools=TOOLS, tool_choice="none")
        usage = validate("CompletionUsage", plain["usage"])
        self.assertEqual(usage["prompt_tokens"], prompt_tokens(["What is the weather in Paris?"]))
        self.assertGreater(tooled["usage"]["prompt_tokens"], usage["prompt_tokens"] + 20)
        self.assertEqual(usage["prompt_tokens_details"], {"cached_tokens": 0, "audio_tokens": 0})
        self.assertEqual(usage["completion_tokens_details"]["reasoning_tokens"], 0)


def content_pieces(text: str) -> list[str]:
    """The token-sized pieces of ``text``."""
    from mockllm.behaviour.content import tokenize

    return tokenize(text)


class TextRouteTests(StubCase):
    """The options the legacy ``/v1/completions`` shares: n, max_tokens, stop, seed, logprobs."""

    def complete(self, **body):
        """POST a legacy body; its JSON, validated."""
        _, obj = self.body_of(self.post(TEXT_URL, dict({"model": "gpt-3.5-turbo", "prompt": "Say hi"}, **body)))
        return obj

    def test_n_and_max_tokens(self) -> None:
        """``n: 2, max_tokens: 2``: two choices of two tokens each, ``length``."""
        body = validate("CreateCompletionResponse", self.complete(n=2, max_tokens=2))
        self.assertEqual([(c["index"], len(content_pieces(c["text"])), c["finish_reason"]) for c in body["choices"]],
                         [(0, 2, "length"), (1, 2, "length")])
        self.assertEqual(body["usage"]["completion_tokens"], 4)

    def test_stop_and_seed(self) -> None:
        """``stop`` ends the text before the sequence; the same seed gives the same text."""
        whole = self.complete(seed=3)["choices"][0]["text"]
        cut = self.complete(seed=3, stop=[" ", "\n"])["choices"][0]
        self.assertEqual(cut["text"], whole.split(" ")[0])

    def test_logprobs(self) -> None:
        """Integer ``logprobs``: the legacy tokens, token_logprobs, top_logprobs and text_offset."""
        body = validate("CreateCompletionResponse", self.complete(logprobs=2))
        choice = body["choices"][0]
        logprobs = choice["logprobs"]
        self.assertEqual("".join(logprobs["tokens"]), choice["text"])
        self.assertEqual(len(logprobs["token_logprobs"]), len(logprobs["tokens"]))
        self.assertTrue(all(len(top) == 2 for top in logprobs["top_logprobs"]))
        offsets = logprobs["text_offset"]
        self.assertEqual(offsets, sorted(offsets))


class BadOptionTests(StubCase):
    """Bad options get the real API's 400, in its error shape, naming the parameter."""

    CASES = [
        ({"n": 0}, "n", "below_min_value"),
        ({"n": 129}, "n", "above_max_value"),
        ({"max_tokens": 0}, "max_tokens", "below_min_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"stop": 5}, "stop", "invalid_type"),
        ({"seed": "x"}, "seed", "invalid_type"),
        ({"logprobs": "yes"}, "logprobs", "invalid_type"),
        ({"top_logprobs": 2}, "top_logprobs", None),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "above_max_value"),
        ({"tools": {}}, "tools", "invalid_type"),
        ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type", "missing_required_parameter"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type", "invalid_value"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name", "missing_required_parameter"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name", "invalid_value"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters", "invalid_type"),
        ({"tool_choice": "auto"}, "tool_choice", None),
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice", "invalid_value"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "invalid_value"),
        ({"tools": TOOLS, "parallel_tool_calls": None}, "parallel_tool_calls", "invalid_type"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"response_format": {"type": "json_object"}}, "messages", None),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format.json_schema.name",
         "missing_required_parameter"),
    ]

    def test_bad_options(self) -> None:
        """Each bad option is a 400 ``invalid_request_error`` with its ``param`` and ``code``."""
        for extra, param, code in self.CASES:
            response, body = self.body_of(self.post(body=dict(CHAT_BODY, **extra)))
            self.assertEqual(response.code, 400, extra)
            validate("ErrorResponse", body)
            error = body["error"]
            self.assertEqual((error["type"], error["param"], error["code"]), ("invalid_request_error", param, code), extra)
            self.assertTrue(error["message"])

    def test_legacy_logprobs_range(self) -> None:
        """The legacy ``logprobs`` is an integer from 0 to 5."""
        response, body = self.body_of(self.post(TEXT_URL, {"model": "gpt-3.5-turbo", "prompt": "x", "logprobs": 6}))
        self.assertEqual((response.code, body["error"]["param"]), (400, "logprobs"))
