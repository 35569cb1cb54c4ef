"""
The chat options through the official ``openai`` SDK over a real loopback socket (the SDK in a
thread, unchanged): ``create``, streaming, ``stream()`` with ``get_final_completion()`` and
``parse()`` for n, max_tokens, stop, seed, logprobs, tools and response_format, every raw body
checked against OpenAI's schemas, and the real API's 400s as the SDK raises them.
"""

from __future__ import annotations

import json
from typing import Literal

import openai
from jsonschema import Draft202012Validator
from openai import pydantic_function_tool
from pydantic import BaseModel

from mockllm.behaviour.content import tokenize
from tests.support import validate
from tests.test_live import LiveCase

MODEL = "gpt-4o-mini"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Forecast for a city",
                                       "parameters": WEATHER, "strict": True}},
    {"type": "function", "function": {"name": "get_time", "description": "Clock time in a timezone",
                                       "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                                      "required": ["tz"]}}},
]


class Forecast(BaseModel):
    """What ``.parse(response_format=Forecast)`` is asked for."""

    city: str
    temperature: int
    sky: Literal["clear", "cloudy", "rain"]
    hourly: list[float]


class GetWeather(BaseModel):
    """A tool defined the SDK's way (``pydantic_function_tool``)."""

    city: str
    days: int


class SDKOptionsCase(LiveCase):
    """Base: a client and a way to run a blocking SDK call off the reactor."""

    def call(self, fn, **kwargs):
        """Run ``fn(model=MODEL, **kwargs)`` in a thread."""
        return self.in_thread(fn, model=MODEL, **kwargs)

    def create_raw(self, **kwargs):
        """``chat.completions.create`` through ``with_raw_response``: the raw body validated, then parsed."""
        client = self.sdk()

        def run():
            raw = client.chat.completions.with_raw_response.create(model=MODEL, **kwargs)
            validate("CreateChatCompletionResponse", json.loads(raw.text))
            return raw.parse()

        return self.in_thread(run)

    def streamed(self, **kwargs):
        """``chat.completions.stream(...)``: every chunk and the final completion."""
        client = self.sdk()

        def run():
            with client.chat.completions.stream(model=MODEL, **kwargs) as stream:
                events = list(stream)
                return [e.chunk for e in events if e.type == "chunk"], stream.get_final_completion()

        return self.in_thread(run)


class SDKChoiceTests(SDKOptionsCase):
    """n, max_tokens, stop, seed and logprobs through the SDK."""

    async def test_n(self) -> None:
        """``n=3``: three choices indexed 0..2, whole and assembled from a stream."""
        completion = await self.create_raw(messages=HELLO, n=3)
        self.assertEqual([c.index for c in completion.choices], [0, 1, 2])
        _, final = await self.streamed(messages=HELLO, n=3)
        self.assertEqual([c.index for c in final.choices], [0, 1, 2])
        self.assertTrue(all(c.message.content and c.finish_reason == "stop" for c in final.choices))

    async def test_max_tokens(self) -> None:
        """``max_tokens=3``: three tokens, ``length``, ``completion_tokens == 3``; streamed, each choice
        finishes with ``length`` and the usage chunk counts them; ``stream()`` raises the SDK's
        ``LengthFinishReasonError`` as it does for the real API."""
        completion = await self.create_raw(messages=HELLO, max_tokens=3)
        self.assertEqual(completion.choices[0].finish_reason, "length")
        self.assertEqual(len(tokenize(completion.choices[0].message.content)), 3)
        self.assertEqual(completion.usage.completion_tokens, 3)
        client = self.sdk()

        def stream():
            return list(client.chat.completions.create(model=MODEL, messages=HELLO, max_completion_tokens=2, n=2,
                                                       stream=True, stream_options={"include_usage": True}))

        chunks = await self.in_thread(stream)
        finishes = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason}
        self.assertEqual(finishes, {0: "length", 1: "length"})
        self.assertEqual(chunks[-1].usage.completion_tokens, 4)
        with self.assertRaises(openai.LengthFinishReasonError):
            await self.streamed(messages=HELLO, max_tokens=2)

    async def test_stop(self) -> None:
        """``stop``: the content ends before the first stop sequence."""
        whole = await self.create_raw(messages=HELLO, seed=8)
        text = whole.choices[0].message.content
        stopped = await self.create_raw(messages=HELLO, seed=8, stop=[" ", "zz"])
        self.assertEqual(stopped.choices[0].message.content, text.split(" ")[0])
        self.assertEqual(stopped.choices[0].finish_reason, "stop")

    async def test_seed(self) -> None:
        """The same seed gives the same choices; another seed, others."""
        one = await self.create_raw(messages=HELLO, seed=1, n=3)
        again = await self.create_raw(messages=HELLO, seed=1, n=3)
        other = await self.create_raw(messages=HELLO, seed=2, n=3)
        texts = [[c.message.content for c in r.choices] for r in (one, again, other)]
        self.assertEqual(texts[0], texts[1])
        self.assertNotEqual(texts[0], texts[2])

    async def test_logprobs(self) -> None:
        """``logprobs`` + ``top_logprobs``: tokens make the content, whole and per streamed chunk."""
        completion = await self.create_raw(messages=HELLO, logprobs=True, top_logprobs=4)
        choice = completion.choices[0]
        self.assertEqual("".join(t.token for t in choice.logprobs.content), choice.message.content)
        self.assertTrue(all(len(t.top_logprobs) == 4 for t in choice.logprobs.content))
        chunks, final = await self.streamed(messages=HELLO, logprobs=True, top_logprobs=1)
        pieces = [c.choices[0] for c in chunks if c.choices and c.choices[0].delta.content]
        self.assertTrue(all(p.logprobs.content[0].token == p.delta.content for p in pieces))
        self.assertEqual("".join(t.token for t in final.choices[0].logprobs.content), final.choices[0].message.content)


class SDKToolTests(SDKOptionsCase):
    """Tools and tool_choice through the SDK."""

    def check_calls(self, calls) -> None:
        """Each call has a ``call_`` id and arguments valid against its function's schema."""
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
        for call in calls:
            self.assertRegex(call.id, r"^call_[A-Za-z0-9]{24}$")
            self.assertTrue(Draft202012Validator(schemas[call.function.name]).is_valid(json.loads(call.function.arguments)))

    async def test_required(self) -> None:
        """``required``: a call, ``content`` None, ``tool_calls``."""
        completion = await self.create_raw(messages=HELLO, tools=TOOLS, tool_choice="required")
        choice = completion.choices[0]
        self.assertIsNone(choice.message.content)
        self.assertEqual(choice.finish_reason, "tool_calls")
        self.assertEqual(len(choice.message.tool_calls), 1)
        self.check_calls(choice.message.tool_calls)

    async def test_named(self) -> None:
        """A named function is the one called, finishing with ``stop``."""
        named = {"type": "function", "function": {"name": "get_time"}}
        completion = await self.create_raw(messages=ASK, tools=TOOLS, tool_choice=named)
        choice = completion.choices[0]
        self.assertEqual([c.function.name for c in choice.message.tool_calls], ["get_time"])
        self.assertEqual(choice.finish_reason, "stop")
        self.check_calls(choice.message.tool_calls)

    async def test_auto_and_none(self) -> None:
        """``auto`` calls the tool the message mentions, and talks otherwise; ``none`` always talks."""
        called = await self.create_raw(messages=ASK, tools=TOOLS)
        self.assertEqual([c.function.name for c in called.choices[0].message.tool_calls], ["get_weather"])
        talked = await self.create_raw(messages=HELLO, tools=TOOLS)
        self.assertIsNone(talked.choices[0].message.tool_calls)
        none = await self.create_raw(messages=ASK, tools=TOOLS, tool_choice="none")
        self.assertIsNone(none.choices[0].message.tool_calls)
        self.assertTrue(none.choices[0].message.content)

    async def test_parallel(self) -> None:
        """A message naming two tools gets two calls in parallel; with ``parallel_tool_calls=False`` one."""
        both = [{"role": "user", "content": "Weather in Paris and the time in the Europe/Paris timezone?"}]
        completion = await self.create_raw(messages=both, tools=TOOLS)
        calls = completion.choices[0].message.tool_calls
        self.assertEqual([c.function.name for c in calls], ["get_weather", "get_time"])
        self.check_calls(calls)
        single = await self.create_raw(messages=both, tools=TOOLS, parallel_tool_calls=False)
        self.assertEqual(len(single.choices[0].message.tool_calls), 1)

    async def test_follow_up_gets_text(self) -> None:
        """The tool's result sent back (``role: "tool"``) gets a text answer."""
        first = await self.create_raw(messages=ASK, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        messages = ASK + [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear", "temperature": 21}'},
        ]
        answer = await self.create_raw(messages=messages, tools=TOOLS)
        self.assertIsNone(answer.choices[0].message.tool_calls)
        self.assertTrue(answer.choices[0].message.content)
        self.assertEqual(answer.choices[0].finish_reason, "stop")

    async def test_streamed_calls_assemble(self) -> None:
        """``stream()`` assembles streamed calls (parallel, and with ``n=2``) into the final completion."""
        both = [{"role": "user", "content": "weather and timezone please"}]
        chunks, final = await self.streamed(messages=both, tools=TOOLS, n=2)
        for choice in final.choices:
            self.assertEqual([c.function.name for c in choice.message.tool_calls], ["get_weather", "get_time"])
            self.assertEqual(choice.finish_reason, "tool_calls")
            self.check_calls(choice.message.tool_calls)
        fragments = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls
                     and c.choices[0].delta.tool_calls[0].id is None]
        self.assertGreater(len(fragments), 4)

    async def test_parse_tool(self) -> None:
        """``parse(tools=[pydantic_function_tool(Model)])``: the SDK parses the arguments into the model."""
        client = self.sdk()
        completion = await self.call(client.chat.completions.parse, messages=ASK,
                                     tools=[pydantic_function_tool(GetWeather)], tool_choice="required")
        parsed = completion.choices[0].message.tool_calls[0].function.parsed_arguments
        self.assertIsInstance(parsed, GetWeather)


class SDKFormatTests(SDKOptionsCase):
    """response_format through the SDK."""

    async def test_json_object(self) -> None:
        """``json_object``: the content is a JSON object."""
        messages = [{"role": "user", "content": "Reply in JSON please"}]
        completion = await self.create_raw(messages=messages, response_format={"type": "json_object"})
        self.assertIsInstance(json.loads(completion.choices[0].message.content), dict)

    async def test_parse_model(self) -> None:
        """``parse(response_format=Model)``: the content validates, and the SDK hands back the model."""
        client = self.sdk()
        completion = await self.call(client.chat.completions.parse, messages=ASK, response_format=Forecast, n=2)
        for choice in completion.choices:
            self.assertIsInstance(choice.message.parsed, Forecast)

    async def test_stream_parse_model(self) -> None:
        """``stream(response_format=Model)``: the final completion's message is parsed into the model."""
        _, final = await self.streamed(messages=ASK, response_format=Forecast)
        self.assertIsInstance(final.choices[0].message.parsed, Forecast)


class SDKBadOptionTests(SDKOptionsCase):
    """The real API's 400s reach the SDK as ``BadRequestError`` naming the parameter."""

    async def test_bad_options(self) -> None:
        """top_logprobs without logprobs, five stops, a named tool not offered, tool_choice without tools."""
        client = self.sdk()
        cases = [
            ({"top_logprobs": 2}, "top_logprobs"),
            ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
            ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
            ({"tool_choice": "required"}, "tool_choice"),
            ({"n": 200}, "n"),
        ]
        for extra, param in cases:
            with self.assertRaises(openai.BadRequestError) as caught:
                await self.call(client.chat.completions.create, messages=HELLO, **extra)
            self.assertEqual(caught.exception.status_code, 400)
            self.assertEqual(caught.exception.body["param"], param)
