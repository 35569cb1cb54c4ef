"""
``POST /v1/responses``: the request model it fills, the ``response`` object (text, function calls,
incomplete), its named event stream in the real order, its in-band error events, the failure
controls and the real API's 400s; in memory and through the official SDK over a real socket.
"""

from __future__ import annotations

import json

import jsonschema
import openai
from pydantic import BaseModel
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.behaviour.errors import APIError
from mockllm.behaviour.plan import PlanPart
from mockllm.behaviour.reply import Choice, Reply, Stamp, ToolCall
from mockllm.config import Config, ResponsesConfig
from mockllm.dialects.responses import Responses
from mockllm.http.routes import MockLLM
from tests.support import Finished, RawHTTP, listen, make_app, validate

PATH = "/v1/responses"
MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False},
    "strict": True,
}
CALL = ToolCall("call_abc123", "get_weather", '{"city": "Paris"}')
CALLING = Reply((Choice((), (CALL,), "tool_calls"),))
ANSWER = Reply.of_text("It is sunny in Paris.")
CUT = Reply((Choice(("It", " is", " sun"), finish_reason="length"),))
TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    "response.output_text.delta", "response.output_text.done", "response.content_part.done",
    "response.output_item.done", "response.completed",
]


class Replies:
    """A scenario layer answering with ``first``, or ``after_tool`` once the input ends with a tool's
    result; it keeps every request model it saw."""

    def __init__(self, first: Reply, after_tool: Reply | None = None) -> None:
        self.first = first
        self.after_tool = after_tool or first
        self.seen: list = []

    def plan(self, request, caller) -> tuple[str, PlanPart]:
        """The fixed reply for this request."""
        self.seen.append(request)
        return "fixed", PlanPart(content=self.after_tool if request.after_tool else self.first)


def named_events(body: bytes) -> list[tuple[str, dict]]:
    """``(event name, data)`` of each named server-sent event, checking the name is the data's ``type``."""
    events = []
    for block in body.split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        name = name_line.removeprefix(b"event: ").decode()
        data = json.loads(data_line.removeprefix(b"data: "))
        assert data["type"] == name, (name, data)
        events.append((name, data))
    return events


def checked(body: bytes, test: unittest.TestCase) -> list[tuple[str, dict]]:
    """The stream's events, each valid against the schema, numbered 0, 1, 2, ...; no ``[DONE]``."""
    test.assertNotIn(b"[DONE]", body)
    events = named_events(body)
    for _, data in events:
        validate("ResponseStreamEvent", data)
    test.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
    return events


class InMemoryTests(unittest.TestCase):
    """The route in memory, on the app's real site."""

    def setUp(self) -> None:
        self.replies = Replies(CALLING, ANSWER)
        self.app, self.clock = make_app()

    def with_replies(self, first: Reply, after_tool: Reply | None = None) -> None:
        """Rebuild the app so that its scenario layer answers with these replies."""
        self.replies = Replies(first, after_tool)
        self.finished = Finished()
        self.app, self.clock = make_app(scenarios=self.replies, observers=[self.finished])

    def post(self, body, query: str = "", headers=None) -> RawHTTP:
        """Send ``body`` to the route and return the connection."""
        return RawHTTP(self.app).send("POST", PATH + query, body, headers)

    def create(self, **body) -> dict:
        """A successful whole answer, validated."""
        conn = self.post(dict({"model": MODEL}, **body))
        self.assertEqual(conn.status, 200, conn.body)
        return validate("Response", conn.json())

    def streamed(self, **body) -> list[tuple[str, dict]]:
        """A successful streamed answer's events, checked."""
        conn = self.post(dict({"model": MODEL, "stream": True}, **body))
        self.clock.pump([0.05] * 400)
        self.assertEqual(conn.status, 200, conn.body)
        self.assertEqual(conn.headers["content-type"], "text/event-stream; charset=utf-8")
        return checked(conn.body, self)

    def error(self, body, status: int = 400) -> dict:
        """An error answer's ``error`` object, validated, with ``status``."""
        conn = self.post(body)
        self.assertEqual(conn.status, status, conn.body)
        return validate("ErrorResponse", conn.json())["error"]

    def test_text(self) -> None:
        """A string input gets a completed ``response`` with one assistant message of ``output_text``,
        its settings echoed and the usage's details."""
        body = self.create(input="Hello there", instructions="Be brief.")
        self.assertTrue(body["id"].startswith("resp_"))
        self.assertEqual((body["object"], body["status"], body["model"]), ("response", "completed", MODEL))
        self.assertEqual((body["error"], body["incomplete_details"]), (None, None))
        (item,) = body["output"]
        self.assertTrue(item["id"].startswith("msg_"))
        self.assertEqual((item["type"], item["role"], item["status"]), ("message", "assistant", "completed"))
        (part,) = item["content"]
        self.assertEqual((part["type"], part["annotations"]), ("output_text", []))
        self.assertGreater(len(part["text"]), 10)
        self.assertEqual((body["instructions"], body["tools"], body["tool_choice"], body["parallel_tool_calls"]),
                         ("Be brief.", [], "auto", True))
        usage = body["usage"]
        self.assertEqual(usage["input_tokens_details"]["cached_tokens"], 0)
        self.assertEqual(usage["output_tokens_details"]["reasoning_tokens"], 0)
        self.assertEqual(usage["total_tokens"], usage["input_tokens"] + usage["output_tokens"])

    def test_request_model(self) -> None:
        """Items, instructions, flat tools, a named tool choice, the token limit and the JSON schema format
        fill the shared request model; a last ``function_call_output`` marks it ``after_tool``."""
        self.with_replies(ANSWER)
        items = [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ]
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        self.create(input=items, instructions="Be brief.", tools=[WEATHER], parallel_tool_calls=False,
                    tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=50,
                    text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}})
        (request,) = self.replies.seen
        self.assertEqual(request.kind, "responses")
        self.assertEqual(request.texts, ("Be brief.", "Weather in Paris?", '{"city":"Paris"}', "sunny"))
        self.assertEqual([(t.name, t.description, t.strict) for t in request.tools],
                         [("get_weather", "The weather in a city", True)])
        self.assertEqual(request.tools[0].parameters, WEATHER["parameters"])
        self.assertEqual((request.tool_choice, request.forced_tool, request.parallel_tool_calls),
                         ("function", "get_weather", False))
        self.assertEqual((request.max_tokens, request.output_format, request.output_schema_name),
                         (50, "json_schema", "answer"))
        self.assertEqual(request.output_schema, schema)
        self.assertTrue(request.after_tool)
        self.assertGreater(request.prompt_tokens, 10)

    def test_function_call(self) -> None:
        """A reply with a tool call is a ``function_call`` item (``fc_`` id, ``call_id``, name, JSON
        arguments); the tools are echoed flat, with every key."""
        self.with_replies(CALLING)
        body = self.create(input="Weather in Paris?", tools=[dict(WEATHER, strict=None, description=None)])
        (item,) = body["output"]
        self.assertTrue(item["id"].startswith("fc_"))
        self.assertEqual((item["type"], item["call_id"], item["name"], item["status"]),
                         ("function_call", "call_abc123", "get_weather", "completed"))
        self.assertEqual(json.loads(item["arguments"]), {"city": "Paris"})
        self.assertEqual(body["tools"], [dict(WEATHER, strict=True, description=None)])

    def test_text_and_call(self) -> None:
        """A choice with text and a call answers a message item, then the call item, ids distinct."""
        self.with_replies(Reply((Choice(("Let", " me", " check"), (CALL,), "tool_calls"),)))
        body = self.create(input="x", tools=[WEATHER])
        self.assertEqual([i["type"] for i in body["output"]], ["message", "function_call"])
        self.assertEqual(len({i["id"] for i in body["output"]}), 2)

    def test_incomplete(self) -> None:
        """A reply cut at its token limit is ``incomplete`` for ``max_output_tokens``, whole and streamed."""
        self.with_replies(CUT)
        body = self.create(input="x", max_output_tokens=16)
        self.assertEqual((body["status"], body["incomplete_details"]), ("incomplete", {"reason": "max_output_tokens"}))
        self.assertEqual(body["output"][0]["status"], "incomplete")
        self.assertEqual(body["max_output_tokens"], 16)
        events = self.streamed(input="x", max_output_tokens=16)
        self.assertEqual(events[-1][0], "response.incomplete")
        self.assertEqual(events[-1][1]["response"]["status"], "incomplete")

    def test_stream_order(self) -> None:
        """The stream's events come in the real order; the deltas make the done text, which the final response holds."""
        events = self.streamed(input="Hello")
        names = [name for name, _ in events]
        deltas = names.count("response.output_text.delta")
        self.assertGreater(deltas, 3)
        self.assertEqual([n for i, n in enumerate(names) if n != "response.output_text.delta" or i == 4], TEXT_EVENTS)
        data = dict(events)
        created, final = events[0][1]["response"], events[-1][1]["response"]
        self.assertEqual((created["status"], created["output"], created["usage"]), ("in_progress", [], None))
        text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
        self.assertEqual(data["response.output_text.done"]["text"], text)
        self.assertEqual(final["output"][0]["content"][0]["text"], text)
        self.assertEqual(final["id"], created["id"])
        self.assertEqual(final["output"][0]["id"], data["response.output_item.added"]["item"]["id"])
        self.assertEqual(final["usage"]["output_tokens"], deltas)
        self.assertEqual(final["status"], "completed")

    def test_stream_pacing(self) -> None:
        """The events before the first token go at once; each delta waits the stream interval."""
        conn = self.post({"model": MODEL, "stream": True, "input": "Hello"})
        self.assertEqual([n for n, _ in named_events(conn.body)], TEXT_EVENTS[:4])
        self.clock.advance(0.02)
        self.assertEqual(named_events(conn.body)[-1][0], "response.output_text.delta")
        self.assertEqual(len(named_events(conn.body)), 5)

    def test_stream_function_call(self) -> None:
        """A streamed call: the item added with empty arguments, argument deltas, their done, the item done."""
        self.with_replies(CALLING)
        events = self.streamed(input="Weather?", tools=[WEATHER])
        names = [n for n, _ in events]
        self.assertEqual(names[:3], ["response.created", "response.in_progress", "response.output_item.added"])
        self.assertEqual(names[-3:], ["response.function_call_arguments.done", "response.output_item.done",
                                      "response.completed"])
        self.assertEqual(events[2][1]["item"]["arguments"], "")
        deltas = [d["delta"] for n, d in events if n == "response.function_call_arguments.delta"]
        self.assertGreater(len(deltas), 1)
        self.assertEqual("".join(deltas), CALL.arguments)
        self.assertEqual(events[-3][1]["arguments"], CALL.arguments)
        self.assertEqual(events[-1][1]["response"]["output"][0]["call_id"], "call_abc123")

    def test_fail_chunk(self) -> None:
        """``fail_chunk=3``: two well-formed events, a malformed third, and the stream ends there."""
        self.with_replies(ANSWER)
        conn = self.post({"model": MODEL, "stream": True, "input": "x"}, "?fail_chunk=3")
        self.clock.pump([0.05] * 400)
        blocks = [b for b in conn.body.split(b"\n\n") if b]
        self.assertEqual(len(blocks), 3)
        checked(b"\n\n".join(blocks[:2]) + b"\n\n", self)
        with self.assertRaises(ValueError):
            json.loads(blocks[2].split(b"\ndata: ")[1])
        self.assertTrue(conn.complete)
        self.assertEqual(self.finished[-1].outcome, "cut-by-fault")

    def test_fail_mode_error(self) -> None:
        """``fail_chunk=5&fail_mode=error``: four events, then an ``error`` event with the status's code and
        ``response.failed``, numbered on (4, 5); the 200 stream then ends properly."""
        conn = self.post({"model": MODEL, "stream": True, "input": "x"}, "?fail_chunk=5&fail_mode=error&fail_status=429")
        self.clock.pump([0.05] * 400)
        self.assertEqual(conn.status, 200)
        self.assertTrue(conn.complete)
        events = checked(conn.body, self)
        self.assertEqual([n for n, _ in events], TEXT_EVENTS[:4] + ["error", "response.failed"])
        self.assertEqual(events[4][1]["code"], "rate_limit_exceeded")
        failed = events[5][1]["response"]
        self.assertEqual((failed["status"], failed["error"]["code"]), ("failed", "rate_limit_exceeded"))
        self.assertEqual(failed["id"], events[0][1]["response"]["id"])

    def test_failure_controls(self) -> None:
        """``fail=429`` is the usual rate-limit error in the ``{"error": ...}`` envelope; ``delay`` waits."""
        conn = self.post({"model": MODEL, "input": "x"}, "?fail=429")
        self.assertEqual(conn.status, 429)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["code"], "rate_limit_exceeded")
        delayed = self.post({"model": MODEL, "input": "x"}, headers={"X-Mock-Delay": "300"})
        self.assertIsNone(delayed.status)
        self.clock.advance(0.3)
        validate("Response", delayed.json())

    def test_bad_input(self) -> None:
        """Missing or mistyped fields, chat-style nested tools and bad tool choices are the real 400s."""
        cases = [
            ({"model": MODEL}, "input", "missing_required_parameter"),
            ({"model": MODEL, "input": 5}, "input", "invalid_type"),
            ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value"),
            ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id",
             "missing_required_parameter"),
            ({"model": MODEL, "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]},
             "tools[0].name", "missing_required_parameter"),
            ({"model": MODEL, "input": "x", "tool_choice": "always"}, "tool_choice", "invalid_value"),
            ({"model": MODEL, "input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice", None),
            ({"model": MODEL, "input": "x", "max_output_tokens": 3}, "max_output_tokens", "below_min_value"),
            ({"model": MODEL, "input": "x", "stream": "yes"}, "stream", "invalid_type"),
            ({"model": MODEL, "input": "x", "instructions": 1}, "instructions", "invalid_type"),
            ({"model": MODEL, "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
            ({"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
             "text.format.name", "missing_required_parameter"),
            ({"model": MODEL, "input": "x", "text": {"format": {"type": "json_object"}}}, "input", None),
            ({"model": MODEL, "input": "x", "tools": [{"name": "f"}]}, "tools[0].type", "missing_required_parameter"),
        ]
        for body, param, code in cases:
            error = self.error(body)
            self.assertEqual((error["param"], error["code"]), (param, code), body)

    def test_models_of_the_wrong_kind(self) -> None:
        """An embedding model is the real "was not found" 400; an unknown model the Responses API's own
        "does not exist" 400 (not chat's 404)."""
        error = self.error({"model": "text-embedding-3-small", "input": "x"})
        self.assertEqual(error["message"], "The requested model, 'text-embedding-3-small' was not found.")
        unknown = self.error({"model": "nope", "input": "x"})
        self.assertEqual((unknown["message"], unknown["param"], unknown["code"]),
                         ("The requested model 'nope' does not exist.", "model", "model_not_found"))


class ComposedTests(unittest.TestCase):
    """The reply composed for the request (no scenario): tools, limits and formats act on it."""

    def setUp(self) -> None:
        self.app, self.clock = make_app()

    def create(self, **body) -> dict:
        """A successful whole answer, validated."""
        conn = RawHTTP(self.app).send("POST", PATH, dict({"model": MODEL}, **body))
        self.assertEqual(conn.status, 200, conn.body)
        return validate("Response", conn.json())

    def test_required_tool(self) -> None:
        """``tool_choice: "required"`` calls a function whose arguments validate against its ``parameters``;
        the follow-up with the call's output is answered with text."""
        body = self.create(input="Hello", tools=[WEATHER], tool_choice="required")
        (call,) = body["output"]
        self.assertEqual((call["type"], call["name"]), ("function_call", "get_weather"))
        self.assertTrue(call["call_id"].startswith("call_"))
        jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])
        follow_up = [{"role": "user", "content": "Hello"},
                     {"type": "function_call", "call_id": call["call_id"], "name": call["name"],
                      "arguments": call["arguments"]},
                     {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
        answer = self.create(input=follow_up, tools=[WEATHER])
        self.assertEqual([i["type"] for i in answer["output"]], ["message"])

    def test_named_tool_and_none(self) -> None:
        """A named function is the one called; ``tool_choice: "none"`` answers with text."""
        other = dict(WEATHER, name="get_time", description="The time")
        body = self.create(input="Hello", tools=[WEATHER, other], tool_choice={"type": "function", "name": "get_time"})
        self.assertEqual([i.get("name") for i in body["output"]], ["get_time"])
        self.assertEqual(body["tool_choice"], {"type": "function", "name": "get_time"})
        body = self.create(input="What is the weather in Paris?", tools=[WEATHER], tool_choice="none")
        self.assertEqual([i["type"] for i in body["output"]], ["message"])

    def test_max_output_tokens(self) -> None:
        """``max_output_tokens`` cuts the text: ``incomplete`` for ``max_output_tokens``, no more tokens than asked."""
        body = self.create(input="Hello", max_output_tokens=16)
        self.assertEqual((body["status"], body["incomplete_details"]), ("incomplete", {"reason": "max_output_tokens"}))
        self.assertEqual(body["usage"]["output_tokens"], 16)

    def test_json_schema(self) -> None:
        """``text.format`` of type ``json_schema``: the text is JSON valid against the schema."""
        schema = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                  "required": ["city", "degrees"], "additionalProperties": False}
        body = self.create(input="Weather?", text={"format": {"type": "json_schema", "name": "w", "schema": schema,
                                                              "strict": True}})
        jsonschema.validate(json.loads(body["output"][0]["content"][0]["text"]), schema)
        self.assertEqual(body["text"]["format"]["name"], "w")


class StreamErrorTests(unittest.TestCase):
    """``Responses.stream_error``: the in-band error of a 200 stream."""

    def test_error_then_failed(self) -> None:
        """An ``error`` event with the error's code, message and param, then ``response.failed`` whose
        response is ``failed`` with that error, numbered on from the events already sent."""
        dialect = Responses()
        request = dialect.parse_body({"model": MODEL, "input": "x", "stream": True}, None)
        error = APIError(429, "Rate limit reached", "rate_limit_error", None, "rate_limit_exceeded")
        body = dialect.stream_error(request, Stamp("resp_" + "ab" * 24, 1700000000), error, 7)
        (name, data), (failed_name, failed) = named_events(body)
        self.assertEqual(name, "error")
        self.assertEqual(validate("ResponseStreamEvent", data),
                         {"type": "error", "code": "rate_limit_exceeded", "message": "Rate limit reached",
                          "param": None, "sequence_number": 7})
        self.assertEqual(failed_name, "response.failed")
        validate("ResponseStreamEvent", failed)
        self.assertEqual(failed["sequence_number"], 8)
        self.assertEqual(failed["response"]["status"], "failed")
        self.assertEqual(failed["response"]["error"], {"code": "rate_limit_exceeded", "message": "Rate limit reached"})

    def test_unknown_code_is_server_error(self) -> None:
        """A code the Response's ``error`` cannot carry is reported there as ``server_error``."""
        dialect = Responses()
        request = dialect.parse_body({"model": MODEL, "input": "x"}, None)
        body = dialect.stream_error(request, Stamp("resp_" + "cd" * 24, 1), APIError(502, "Bad gateway.", "server_error",
                                                                                   None, "bad_gateway"))
        (_, data), (_, failed) = named_events(body)
        self.assertEqual((data["code"], data["sequence_number"]), ("bad_gateway", 0))
        self.assertEqual(validate("ResponseStreamEvent", failed)["response"]["error"]["code"], "server_error")


class SDKTests(unittest.TestCase):
    """The official SDK's ``responses.create`` and ``responses.stream`` over a real socket."""

    timeout = 30

    def serve(self, scenarios=None) -> openai.OpenAI:
        """Serve an app (with ``scenarios`` as its scenario layer) and return an SDK client for it."""
        config = Config(responses=ResponsesConfig(stream_interval_ms=1))
        base = listen(self, MockLLM(config, reactor, scenarios=scenarios))
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", timeout=10, max_retries=0)
        self.addCleanup(client.close)
        return client

    async def test_create(self) -> None:
        """``responses.create`` parses the raw JSON, which validates; ``output_text`` is the message's text."""
        client = self.serve()
        raw = await deferToThread(client.responses.with_raw_response.create, model=MODEL, input="Hello",
                                  instructions="Be brief.")
        validate("Response", json.loads(raw.text))
        response = raw.parse()
        self.assertEqual((response.status, response.instructions), ("completed", "Be brief."))
        self.assertGreater(len(response.output_text), 10)
        self.assertEqual(response.usage.total_tokens, response.usage.input_tokens + response.usage.output_tokens)

    async def test_stream_and_final_response(self) -> None:
        """``responses.stream``: the text deltas, and ``get_final_response()`` holds their text;
        ``responses.create(stream=True)`` yields the same typed events."""
        client = self.serve()

        def consume():
            with client.responses.stream(model=MODEL, input="Hello") as stream:
                kinds = [event.type for event in stream]
                return kinds, stream.get_final_response()

        kinds, final = await deferToThread(consume)
        raw_kinds = await deferToThread(lambda: [e.type for e in client.responses.create(model=MODEL, input="Hi", stream=True)])
        self.assertEqual(raw_kinds[:4], TEXT_EVENTS[:4])
        self.assertEqual(raw_kinds[-1], "response.completed")
        self.assertEqual(kinds[0], "response.created")
        self.assertEqual(kinds[-1], "response.completed")
        self.assertIn("response.output_text.delta", kinds)
        self.assertEqual(final.status, "completed")
        self.assertGreater(len(final.output_text), 10)

    async def test_function_call_and_follow_up(self) -> None:
        """A function call comes back with its ``call_id`` and JSON arguments (whole and streamed); the
        follow-up with its ``function_call_output`` gets a text answer."""
        client = self.serve(Replies(CALLING, ANSWER))
        first = await deferToThread(client.responses.create, model=MODEL, input="Weather in Paris?", tools=[WEATHER])
        (call,) = first.output
        self.assertEqual((call.type, call.call_id, call.name), ("function_call", "call_abc123", "get_weather"))
        self.assertEqual(json.loads(call.arguments), {"city": "Paris"})

        def streamed():
            with client.responses.stream(model=MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:
                return stream.get_final_response()

        final = await deferToThread(streamed)
        self.assertEqual(final.output[0].arguments, call.arguments)
        follow_up = [{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
                     {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}]
        answer = await deferToThread(client.responses.create, model=MODEL, input=follow_up, tools=[WEATHER])
        self.assertEqual(answer.output_text, "It is sunny in Paris.")

    async def test_composed_tool_call_and_parse(self) -> None:
        """Without a scenario: a required tool is called (streamed too) with arguments valid for its
        schema, and ``responses.parse(text_format=...)`` gets an instance of the model."""
        client = self.serve()
        first = await deferToThread(client.responses.create, model=MODEL, input="Hi", tools=[WEATHER],
                                    tool_choice="required")
        jsonschema.validate(json.loads(first.output[0].arguments), WEATHER["parameters"])

        def streamed():
            with client.responses.stream(model=MODEL, input="Hi", tools=[WEATHER], tool_choice="required") as stream:
                return stream.get_final_response()

        final = await deferToThread(streamed)
        self.assertEqual(final.output[0].type, "function_call")
        jsonschema.validate(json.loads(final.output[0].arguments), WEATHER["parameters"])

        class Weather(BaseModel):
            city: str
            degrees: int

        parsed = await deferToThread(client.responses.parse, model=MODEL, input="Weather?", text_format=Weather)
        self.assertIsInstance(parsed.output_parsed, Weather)

    async def test_failures(self) -> None:
        """``?fail=429`` raises RateLimitError; ``fail_chunk`` breaks the SDK's stream mid-way; a bad
        request raises BadRequestError."""
        client = self.serve()
        with self.assertRaises(openai.RateLimitError):
            await deferToThread(client.responses.create, model=MODEL, input="x", extra_query={"fail": "429"})

        def broken():
            with client.responses.stream(model=MODEL, input="x", extra_query={"fail_chunk": "5"}) as stream:
                return list(stream)

        with self.assertRaises(Exception) as caught:
            await deferToThread(broken)
        self.assertNotIsInstance(caught.exception, openai.APIStatusError)
        with self.assertRaises(openai.BadRequestError):
            await deferToThread(client.responses.create, model=MODEL, input="x", max_output_tokens=1)

    async def test_in_band_error(self) -> None:
        """``fail_mode=error``: the SDK's stream yields the ``error`` and ``response.failed`` events (their
        message is the status's), and ``get_final_response()`` has no completed response to give."""
        client = self.serve()

        def consume():
            query = {"fail_chunk": "4", "fail_mode": "error", "fail_status": "500"}
            with client.responses.stream(model=MODEL, input="x", extra_query=query) as stream:
                events = list(stream)
                try:
                    stream.get_final_response()
                except RuntimeError as error:
                    return events, error
                return events, None

        events, error = await deferToThread(consume)
        self.assertEqual([e.type for e in events][-2:], ["error", "response.failed"])
        self.assertEqual(events[-2].message, "Internal server error")
        self.assertEqual(events[-1].response.status, "failed")
        self.assertIsInstance(error, RuntimeError)
