"""
Response rules: ``[[rules]]`` in the configuration and ``/__admin/rules``.  The first rule
that matches a request (model, path, last user message, tools offered, a header) answers it
with fixed content, a tool call, a finish reason or a fault; no match, the usual reply.
Rules sit between the request's controls and the scenario.  Bad rules are refused naming
the rule and the key.  In memory on a ``task.Clock``, and over a real socket with treq and
the official SDK.
"""

from __future__ import annotations

import json
import os
import tempfile

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.behaviour.rules import RuleError, parse_rules
from mockllm.config import Config
from mockllm.config.describe import render
from mockllm.config.toml import load_config
from mockllm.scenario import ScenarioRunner, define, discover
from mockllm.http.routes import MockLLM
from mockllm.behaviour.rules import RuleBook
from tests.limits_support import limited_app, post
from tests.support import CHAT_BODY, RawHTTP, listen, parse_sse, treq_client, validate

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
WEATHER = {"message": "(?i)weather", "tools": True, "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def ask(text: str, **body: object) -> dict:
    """A chat body whose last user message is ``text``."""
    return dict(CHAT_BODY, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}], **body)


def rules_config(*rules: dict) -> Config:
    """The default configuration with ``rules``."""
    return Config(rules=tuple(rules))


class MatchTests(unittest.TestCase):
    """What rules match and what they answer."""

    def content_of(self, conn: RawHTTP) -> str:
        """The message content of a schema-valid chat completion."""
        self.assertEqual(conn.status, 200, conn.body)
        return validate("CreateChatCompletionResponse", conn.json())["choices"][0]["message"]["content"]

    def test_content_by_message(self) -> None:
        """A rule's regex on the last user message gives its fixed content; others get the usual reply."""
        app = limited_app(rules_config({"message": "^ping$", "content": "pong"})).app
        self.assertEqual(self.content_of(post(app, ask("ping"))), "pong")
        self.assertNotEqual(self.content_of(post(app, ask("ping please"))), "pong")

    def test_last_user_message_not_the_last_message(self) -> None:
        """The message matched is the last user one, even when a tool result follows it."""
        app = limited_app(rules_config({"message": "weather", "content": "It is sunny."})).app
        body = dict(CHAT_BODY, messages=[
            {"role": "user", "content": [{"type": "text", "text": "the weather?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
        ])
        self.assertEqual(self.content_of(post(app, body)), "It is sunny.")

    def test_tool_call(self) -> None:
        """A tool call rule answers ``tool_calls`` with the arguments as JSON and ``finish_reason: tool_calls``."""
        app = limited_app(rules_config(WEATHER)).app
        conn = post(app, ask("What's the weather?", tools=TOOLS))
        choice = validate("CreateChatCompletionResponse", conn.json())["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertIsNone(choice["message"]["content"])
        call = choice["message"]["tool_calls"][0]
        self.assertRegex(call["id"], r"^call_[A-Za-z0-9]+$")
        self.assertEqual(call["function"], {"name": "get_weather", "arguments": '{"city":"Paris"}'})
        self.assertNotIn("tool_calls", post(app, ask("What's the weather?")).json()["choices"][0]["message"])

    def test_tool_call_streamed(self) -> None:
        """Streamed, the call comes as tool-call deltas and the finish reason ``tool_calls``."""
        limited = limited_app(rules_config(WEATHER))
        conn = post(limited.app, ask("weather", tools=TOOLS, stream=True))
        for _ in range(50):
            limited.clock.advance(0.1)
        events = conn.events()
        self.assertEqual(events[-1], "[DONE]")
        chunks = [validate("CreateChatCompletionStreamResponse", json.loads(e)) for e in events[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks]
        opening = next(d["tool_calls"][0] for d in deltas if "tool_calls" in d)
        self.assertEqual((opening["function"]["name"], opening["function"]["arguments"]), ("get_weather", ""))
        arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d)
        self.assertEqual(json.loads(arguments), {"city": "Paris"})
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "tool_calls")

    def test_model_path_header_and_first_match(self) -> None:
        """Each condition narrows; all a rule gives must hold; the first matching rule wins."""
        app = limited_app(rules_config(
            {"model": "gpt-4o", "content": "four-o"},
            {"header": {"name": "X-Tenant", "value": "^acme"}, "content": "acme"},
            {"path": "/v1/completions", "content": "legacy"},
            {"content": "anything else"},
        )).app
        self.assertEqual(self.content_of(post(app, dict(CHAT_BODY, model="gpt-4o"), {"X-Tenant": "acme"})), "four-o")
        self.assertEqual(self.content_of(post(app, headers={"X-Tenant": "acme-corp"})), "acme")
        self.assertEqual(self.content_of(post(app, headers={"X-Tenant": "other"})), "anything else")
        legacy = post(app, {"model": "gpt-4o-mini", "prompt": "Hi"}, path="/v1/completions")
        self.assertEqual(validate("CreateCompletionResponse", legacy.json())["choices"][0]["text"], "legacy")

    def test_tools_false(self) -> None:
        """``tools = false`` matches only requests offering no tools."""
        app = limited_app(rules_config({"tools": False, "content": "no tools"})).app
        self.assertEqual(self.content_of(post(app)), "no tools")
        self.assertNotEqual(self.content_of(post(app, dict(CHAT_BODY, tools=TOOLS))), "no tools")

    def test_finish_reason(self) -> None:
        """A finish reason with content, or alone over a generated reply."""
        app = limited_app(rules_config(
            {"message": "cut", "content": "Half an ans", "finish_reason": "length"},
            {"message": "filter", "finish_reason": "content_filter"},
        )).app
        cut = post(app, ask("cut")).json()["choices"][0]
        self.assertEqual((cut["message"]["content"], cut["finish_reason"]), ("Half an ans", "length"))
        filtered = validate("CreateChatCompletionResponse", post(app, ask("filter")).json())["choices"][0]
        self.assertEqual(filtered["finish_reason"], "content_filter")
        self.assertTrue(filtered["message"]["content"])

    def test_faults(self) -> None:
        """Controls in a rule are faults: a status, a cut stream, a delay on the clock."""
        limited = limited_app(rules_config(
            {"message": "down", "fail": 503},
            {"message": "cut", "fail_chunk": 2},
            {"message": "slow", "delay": 200, "content": "finally"},
        ))
        app, clock = limited.app, limited.clock
        down = post(app, ask("down"))
        self.assertEqual(down.status, 503)
        self.assertEqual(validate("ErrorResponse", down.json())["error"]["code"], "overloaded")
        cut = post(app, ask("cut", stream=True))
        for _ in range(50):
            clock.advance(0.1)
        self.assertNotIn("[DONE]", cut.events())
        self.assertEqual(len(cut.events()), 2)
        slow = post(app, ask("slow"))
        self.assertIsNone(slow.status)
        clock.advance(0.19)
        self.assertIsNone(slow.status)
        clock.advance(0.011)
        self.assertEqual(self.content_of(slow), "finally")


class PrecedenceTests(unittest.TestCase):
    """Request controls > rule > scenario > configuration."""

    def test_request_controls_beat_the_rule(self) -> None:
        """``fail=none`` undoes a rule's fault; ``?fail=500`` beats a rule's content."""
        app = limited_app(rules_config({"fail": "503"})).app
        self.assertEqual(post(app, path="/v1/chat/completions?fail=none").status, 200)
        app = limited_app(rules_config({"content": "fixed"})).app
        self.assertEqual(post(app, path="/v1/chat/completions?fail=500").status, 500)

    def test_rule_beats_the_scenario(self) -> None:
        """A rule's fault replaces the scenario's; a rule's content leaves the scenario's fault in place."""
        config = Config(rules=({"message": "teapot", "fail": 418}, {"message": "text", "content": "fixed"}),
                        scenarios={"always-500": {"error_rate_percent": 100, "error_statuses": [500]}})
        app = limited_app(config, "always-500").app
        self.assertEqual(post(app, ask("teapot")).status, 418)
        self.assertEqual(post(app, ask("text")).status, 500)
        self.assertEqual(post(app).status, 500)


class ValidationTests(unittest.TestCase):
    """Bad rules are refused naming the rule and the key."""

    def refused(self, *rules: object) -> RuleError:
        """The error ``rules`` give."""
        with self.assertRaises(RuleError) as caught:
            parse_rules(rules, 600_000, 30.0)
        return caught.exception

    def test_messages(self) -> None:
        """Each problem names ``rules[i].key`` and what was expected."""
        bad_regex = self.refused({"content": "x"}, {"message": "(", "content": "x"})
        self.assertEqual(bad_regex.param, "rules[1].message")
        self.assertTrue(str(bad_regex).startswith("rules[1].message: expected a valid regular expression (missing ),"))
        self.assertEqual(str(self.refused({"modle": "x", "content": "y"})),
                         "rules[0].modle: unknown key; expected one of model, path, message, tools, header, content, "
                         "tool_call, finish_reason, delay, drip_ms, fail, fail_chunk, fail_mode, fail_status, itl_ms, "
                         "reply_tokens, retry_after, retry_after_format, should_retry, ttft_ms")
        self.assertEqual(self.refused({"fail": "nope"}).param, "rules[0].fail")
        self.assertIn("Unknown fail type", str(self.refused({"fail": "nope"})))
        self.assertEqual(self.refused({"delay": -5}).param, "rules[0].delay")
        self.assertEqual(str(self.refused({"model": "gpt-4o"})),
                         "rules[0]: says nothing to answer with; give content, tool_call, finish_reason or a control such as fail")
        self.assertEqual(self.refused({"tools": "yes", "content": "x"}).param, "rules[0].tools")
        self.assertEqual(self.refused({"tool_call": {"name": "f", "arguments": "[]"}}).param, "rules[0].tool_call")
        self.assertEqual(self.refused({"header": {"name": "X"}, "content": "x"}).param, "rules[0].header")
        self.assertEqual(self.refused({"finish_reason": "done"}).param, "rules[0].finish_reason")
        self.assertEqual(str(self.refused("content")), "rules[0]: expected a table (a JSON object), got 'content'")

    def write(self, text: str) -> str:
        """A TOML file of ``text``, removed in cleanup."""
        fd, path = tempfile.mkstemp(suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path

    def test_toml_load(self) -> None:
        """``[[rules]]`` tables load in order; a bad one stops the start naming the file, rule and key."""
        path = self.write('[[rules]]\nmessage = "hi"\ncontent = "hello"\n\n[[rules]]\nfail = 503\n')
        self.assertEqual(load_config(path).rules, ({"message": "hi", "content": "hello"}, {"fail": 503}))
        bad = self.write('[[rules]]\nmessage = "["\ncontent = "x"\n')
        with self.assertRaises(usage.UsageError) as caught:
            tap.Options().parseOptions(["--config", bad])
        self.assertTrue(str(caught.exception).startswith(f"{bad}: rules[0].message: expected a valid regular expression"))

    def test_example_file(self) -> None:
        """The shipped example loads, and its rules and limits are what it says."""
        from pathlib import Path

        import mockllm

        config = load_config(str(Path(mockllm.__file__).parent / "examples" / "limits_and_rules.toml"))
        self.assertEqual(len(parse_rules(config.rules, 600_000, 30.0)), 3)
        self.assertEqual(config.server.api_keys, ("sk-test-alice", "sk-test-bob"))
        self.assertEqual(config.models.limits_of("gpt-4o-mini").requests_per_minute, 10)
        self.assertEqual(config.models.limits_of("gpt-4o").context_window, 8192)

    def test_print_config_round_trip(self) -> None:
        """``--print-config`` writes the file's rules as ``[[rules]]`` tables that load back the same."""
        rules = ({"message": "(?i)weather", "tools": True, "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                 {"header": {"name": "X-Tenant", "value": "^acme"}, "fail": 503, "delay": 10},
                 {"message": "\\d+ \"quoted\"", "content": "two\nlines\ttab \u00e9 \x07 \x7f"})
        text = render(Config(rules=rules))
        self.assertIn('[[rules]]\nmessage = "(?i)weather"\ntools = true\n'
                      'tool_call = {name = "get_weather", arguments = {city = "Paris"}}', text)
        self.assertEqual(load_config(self.write(text)).rules, rules)


class AdminTests(unittest.TestCase):
    """``GET``, ``PUT`` and ``DELETE /__admin/rules``."""

    def setUp(self) -> None:
        self.limited = limited_app()
        self.app = self.limited.app

    def call(self, method: str, body: object = None, peer: str = "127.0.0.1") -> RawHTTP:
        """One admin call to ``/__admin/rules``."""
        return RawHTTP(self.app, peer=peer).send(method, "/__admin/rules", body)

    def test_put_get_delete(self) -> None:
        """PUT replaces the list and takes effect at once; GET lists it; DELETE empties it."""
        self.assertEqual(self.call("GET").json(), {"object": "list", "data": [], "count": 0})
        rules = [{"message": "ping", "content": "pong"}]
        put = self.call("PUT", {"rules": rules})
        self.assertEqual(put.status, 200)
        self.assertEqual(put.json(), {"object": "list", "data": rules, "count": 1})
        self.assertEqual(post(self.app, ask("ping")).json()["choices"][0]["message"]["content"], "pong")
        self.assertEqual(self.call("DELETE").json(), {"deleted": 1})
        self.assertEqual(self.call("GET").json()["count"], 0)
        self.assertNotEqual(post(self.app, ask("ping")).json()["choices"][0]["message"]["content"], "pong")

    def test_bad_rules_change_nothing(self) -> None:
        """A bad rule is a 400 naming it; the rules in effect stay."""
        self.call("PUT", {"rules": [{"content": "kept"}]})
        bad = self.call("PUT", {"rules": [{"content": "x"}, {"message": "(", "content": "y"}]})
        self.assertEqual(bad.status, 400)
        error = validate("ErrorResponse", bad.json())["error"]
        self.assertEqual((error["param"], error["code"]), ("rules[1].message", "invalid_rule"))
        self.assertEqual(self.call("GET").json()["data"], [{"content": "kept"}])

    def test_bad_bodies(self) -> None:
        """The body must be ``{"rules": [...]}``."""
        self.assertEqual(self.call("PUT", {"rules": {}}).json()["error"]["param"], "rules")
        self.assertEqual(self.call("PUT", {"rules": [], "extra": 1}).json()["error"]["param"], "extra")
        self.assertEqual(self.call("PUT", b"nope").status, 400)
        self.assertEqual(self.call("POST").status, 405)

    def test_access_checked(self) -> None:
        """Only callers who may use the admin API may change the rules."""
        self.assertEqual(self.call("PUT", {"rules": [{"fail": 500}]}, peer="10.1.2.3").status, 403)
        self.assertEqual(self.call("GET").json()["count"], 0)


class SocketTests(unittest.TestCase):
    """Over a real socket: treq puts the rules, the SDK parses the tool call."""

    timeout = 30

    async def test_put_then_sdk_tool_call(self) -> None:
        """A rule put with treq answers the SDK with a tool call it parses."""
        from mockllm.admin.access import AdminAccess
        from mockllm.admin.api import Admin
        from mockllm.observe.journal import Journal
        import random

        config = Config()
        rules = RuleBook.of((), config.responses, random.Random())
        admin = Admin(Journal(10), None, AdminAccess(), rules=rules)
        base = listen(self, MockLLM(config, reactor, admin=admin.resource(), rules=rules))
        http = treq_client(self)
        response = await http.put(base + "/__admin/rules", json={"rules": [WEATHER]})
        self.assertEqual(response.code, 200)
        self.assertEqual((await response.json())["count"], 1)
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", timeout=10, max_retries=0)
        self.addCleanup(client.close)
        completion = await deferToThread(
            client.chat.completions.create, model="gpt-4o-mini", tools=TOOLS,
            messages=[{"role": "user", "content": "What's the weather like?"}],
        )
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        self.assertEqual(choice.message.tool_calls[0].function.name, "get_weather")
        self.assertEqual(json.loads(choice.message.tool_calls[0].function.arguments), {"city": "Paris"})
