"""
Scenarios: discovery (built-ins, drop-ins, broken modules), each built-in's
behaviour on a ``task.Clock``, ``--seed`` reproducibility, the precedence of
request controls over scenarios over configuration, ``X-Mock-Scenario``, the
runner's admin surface, ``max_connections``, and an end-to-end
``twist mockllm --scenario errors`` over a socket.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import sys
import textwrap
import uuid
from collections import Counter
from dataclasses import replace

from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.behaviour.caller import Caller
from mockllm.config import Config, ResponsesConfig
from mockllm.behaviour.content import count_tokens
from mockllm.http.connlimit import LINGER, ConnectionLimit
from mockllm.http.listen import ListenerService
from mockllm.http.routes import MockLLM
from mockllm.http.site import MockSite
from mockllm.behaviour.plan import ChunkFault, PlanPart, StatusFault
from mockllm.scenario import SHADOWED, ScenarioRunner, UnknownScenario, define, discover
from mockllm.behaviour.request import CompletionRequest
from scenarios.ratelimited import request_tokens
from tests.support import CHAT_BODY, RawHTTP, make_app, treq_client, validate

BUILTINS = {"default", "fast", "slow", "errors", "timeout", "flaky", "ratelimited", "realistic", "chaos"}
PATH = "/v1/chat/completions"

DROP_IN = '''
from zope.interface import implementer
from mockllm.behaviour.plan import PlanPart, StatusFault
from mockllm.scenario import IScenario, Parameter, whole


@implementer(IScenario)
class Teapot:
    name = "{name}"
    description = "Every request is a 418."
    parameters = {{"status": Parameter(418, "The status", whole(400, 599))}}

    def plan(self, request, caller, state):
        return PlanPart(fault=StatusFault(state.params["status"]))


teapot = Teapot()
'''


def chat(stream: bool = False, texts: tuple[str, ...] = ("Hello",), **body: object) -> CompletionRequest:
    """A validated chat request as the app would pass it to scenarios."""
    full = {**CHAT_BODY, "stream": stream, **body}
    return CompletionRequest("chat", "gpt-4o-mini", stream, False, texts, full)


def caller(key: str = "k", scenario: str | None = None) -> Caller:
    """A caller with state key ``key``."""
    return Caller(key=key, address="127.0.0.1:1", identity=None, scenario=scenario)


def runner(
    current: str = "default", seed: int = 1, tables: dict | None = None, responses: ResponsesConfig | None = None
) -> tuple[ScenarioRunner, Clock]:
    """A runner over the built-ins (plus ``tables``) on a fresh clock."""
    clock = Clock()
    definitions = define(discover().scenarios, tables or {})
    return ScenarioRunner(definitions, clock, current, seed, responses), clock


def plans(run: ScenarioRunner, count: int, request: CompletionRequest | None = None, key: str = "k") -> list[PlanPart]:
    """The scenario layer for ``count`` requests in a row; each part's ``draws`` (the key's generator)
    is replaced by the first 64 bits the request draws from it, as the engine draws at once."""
    request = request or chat()
    parts = []
    for _ in range(count):
        part = run.plan(request, caller(key))[1]
        parts.append(part if part.draws is None else replace(part, draws=part.draws.getrandbits(64)))
    return parts


def scenario_app(current: str = "default", config: Config | None = None, seed: int = 0, **params):
    """An app (on a clock) whose scenario layer is a runner on ``current``."""
    config = config or Config()
    clock = Clock()
    clock.advance(1_700_000_000)
    run = ScenarioRunner(define(discover().scenarios, config.scenarios), clock, current, seed, config.responses)
    if params:
        run.switch(current, params)
    app = MockLLM(config, clock, rng=random.Random(seed), scenarios=run)
    return app, clock


def assert_near(test: unittest.TestCase, value: float, target: float, delta: float) -> None:
    """Fail unless ``value`` is within ``delta`` of ``target`` (trial's assertAlmostEqual has no delta)."""
    test.assertLessEqual(abs(value - target), delta, f"{value} is not within {delta} of {target}")


def write_module(directory: str, source: str) -> str:
    """Write ``source`` as a uniquely named module in ``directory``; return the module's name."""
    name = "t_" + uuid.uuid4().hex[:12]
    with open(os.path.join(directory, name + ".py"), "w") as f:
        f.write(textwrap.dedent(source))
    return name


class DiscoveryTests(unittest.TestCase):
    """``getPlugins(IScenario, scenarios)`` with drop-ins and broken modules."""

    def tearDown(self) -> None:
        for name in [m for m in sys.modules if m.startswith("scenarios.t_")]:
            del sys.modules[name]

    def test_builtins(self) -> None:
        """Every built-in is found, with a description and described parameters."""
        found = discover()
        self.assertLessEqual(BUILTINS, set(found.scenarios))
        self.assertEqual(found.problems, {})
        for scenario in found.scenarios.values():
            self.assertTrue(scenario.description)
            for parameter in scenario.parameters.values():
                self.assertTrue(parameter.description)

    def test_drop_in(self) -> None:
        """A scenario file written into a directory given as a scenario path is found and runs."""
        directory = self.mktemp()
        os.makedirs(directory)
        name = "teapot-" + uuid.uuid4().hex[:6]
        write_module(directory, DROP_IN.format(name=name))
        found = discover([directory])
        self.assertIn(name, found.scenarios)
        run = ScenarioRunner(define(found.scenarios), Clock(), name)
        self.assertEqual(run.plan(chat(), caller())[1].fault, StatusFault(418))

    def test_drop_in_needs_the_path(self) -> None:
        """The extra directory is searched only when it is given: the package path is restored."""
        directory = self.mktemp()
        os.makedirs(directory)
        name = "teapot-" + uuid.uuid4().hex[:6]
        write_module(directory, DROP_IN.format(name=name))
        discover([directory])
        self.assertNotIn(name, discover().scenarios)

    def test_broken_module(self) -> None:
        """A module that fails to import is reported by name; the others still load."""
        directory = self.mktemp()
        os.makedirs(directory)
        good = "teapot-" + uuid.uuid4().hex[:6]
        write_module(directory, DROP_IN.format(name=good))
        broken = write_module(directory, "import no_such_module_for_mockllm\n")
        found = discover([directory])
        self.flushLoggedErrors(ImportError)
        self.assertIn(good, found.scenarios)
        self.assertLessEqual(BUILTINS, set(found.scenarios))
        self.assertIn(f"scenarios.{broken}", found.problems)
        self.assertIn("no_such_module_for_mockllm", found.problems[f"scenarios.{broken}"])
        self.assertTrue(any(broken in line for line in found.report()))

    def test_syntax_error_module(self) -> None:
        """A module with a syntax error is reported by name too."""
        directory = self.mktemp()
        os.makedirs(directory)
        broken = write_module(directory, "def broken(:\n")
        found = discover([directory])
        self.flushLoggedErrors(SyntaxError)
        self.assertIn(f"scenarios.{broken}", found.problems)
        self.assertLessEqual(BUILTINS, set(found.scenarios))

    def test_shadowed_module(self) -> None:
        """A drop-in named like a built-in module is reported by module name and path, not silently ignored."""
        first, second = self.mktemp(), self.mktemp()
        os.makedirs(first)
        os.makedirs(second)
        name = "teapot-" + uuid.uuid4().hex[:6]
        own = write_module(first, DROP_IN.format(name=name))
        for directory in (first, second):
            with open(os.path.join(directory, "flaky.py"), "w") as f:
                f.write(DROP_IN.format(name=name + "-shadowed"))
        with open(os.path.join(second, own + ".py"), "w") as f:
            f.write(DROP_IN.format(name=name + "-again"))
        found = discover([first, second, first])
        self.assertIn(name, found.scenarios)
        self.assertNotIn(name + "-shadowed", found.scenarios)
        self.assertNotIn(name + "-again", found.scenarios)
        expected = [
            os.path.join(os.path.abspath(first), "flaky.py"),
            os.path.join(os.path.abspath(second), "flaky.py"),
            os.path.join(os.path.abspath(second), own + ".py"),
        ]
        self.assertEqual(
            sorted(found.problems),
            sorted([f"scenarios.flaky ({expected[0]})", f"scenarios.flaky ({expected[1]})", f"scenarios.{own} ({expected[2]})"]),
        )
        line = f"scenario module scenarios.flaky ({expected[0]}): {SHADOWED}"
        self.assertIn(line, found.report())
        self.assertIn("rename the file", SHADOWED)

    def test_scenario_path_option(self) -> None:
        """``--scenario-path DIR --scenario NAME`` selects a drop-in; a missing directory is a UsageError."""
        directory = self.mktemp()
        os.makedirs(directory)
        name = "teapot-" + uuid.uuid4().hex[:6]
        write_module(directory, DROP_IN.format(name=name))
        options = tap.Options()
        options.parseOptions(["--scenario-path", directory, "--scenario", name, "--no-https"])
        self.assertIn(name, options.definitions)
        with self.assertRaises(usage.UsageError):
            tap.Options().parseOptions(["--scenario-path", directory + "-missing"])


class OptionTests(unittest.TestCase):
    """``--scenario``, ``--list-scenarios`` and ``--seed``."""

    def test_unknown_scenario(self) -> None:
        """An unknown ``--scenario`` is a UsageError listing the known ones."""
        with self.assertRaises(usage.UsageError) as raised:
            tap.Options().parseOptions(["--scenario", "nope"])
        for name in BUILTINS:
            self.assertIn(name, str(raised.exception))

    def test_list_scenarios(self) -> None:
        """``--list-scenarios`` prints each name, description and parameters, then exits 0."""
        out = self._capture_stdout()
        with self.assertRaises(SystemExit) as raised:
            tap.Options().parseOptions(["--list-scenarios"])
        self.assertEqual(raised.exception.code, 0)
        text = out.getvalue()
        for name in BUILTINS:
            self.assertIn(f"\n{name}: ", text)
        self.assertIn("fail_first = 3", text)
        self.assertIn("requests_per_minute = null", text)

    def _capture_stdout(self):
        from io import StringIO

        out = StringIO()
        self.patch(sys, "stdout", out)
        return out

    def test_seed_option(self) -> None:
        """``--seed`` must be a whole number."""
        options = tap.Options()
        options.parseOptions(["--seed", "42"])
        self.assertEqual(options["seed"], 42)
        with self.assertRaises(usage.UsageError):
            tap.Options().parseOptions(["--seed", "x"])


class RunnerTests(unittest.TestCase):
    """The runner's admin surface: current, switch, reset, describe."""

    def test_switch_and_describe(self) -> None:
        """``switch`` changes the current scenario and its parameters; ``describe`` is JSON."""
        run, _ = runner()
        self.assertEqual(run.current, "default")
        run.switch("flaky", {"fail_first": 1})
        described = json.loads(json.dumps(run.describe()))
        self.assertEqual(described["name"], "flaky")
        self.assertEqual(described["parameters"]["fail_first"], 1)
        self.assertEqual(described["parameters"]["fail_status"], 503)
        self.assertIn("errors", described["available"])
        self.assertTrue(described["description"])

    def test_switch_errors(self) -> None:
        """Unknown names and bad parameters raise with a clear message, changing nothing."""
        run, _ = runner()
        with self.assertRaises(KeyError) as raised:
            run.switch("nope")
        self.assertIn("nope", str(raised.exception))
        self.assertIsInstance(raised.exception, ValueError)
        self.assertIsInstance(raised.exception, UnknownScenario)
        with self.assertRaises(ValueError) as raised:
            run.switch("flaky", {"fail_first": -1})
        self.assertIn("fail_first", str(raised.exception))
        with self.assertRaises(ValueError) as raised:
            run.switch("flaky", {"nonsense": 1})
        self.assertIn("nonsense", str(raised.exception))
        self.assertEqual(run.current, "default")

    def test_unknown_at_start(self) -> None:
        """A runner cannot start on an unknown scenario."""
        with self.assertRaises(UnknownScenario):
            runner("nope")

    def test_reset(self) -> None:
        """``reset`` forgets per-key counters and restarts the random sequences."""
        run, _ = runner("flaky")
        first = [p.fault for p in plans(run, 4)]
        run.reset()
        self.assertEqual([p.fault for p in plans(run, 4)], first)
        run.switch("chaos")
        before = plans(run, 20)
        run.reset()
        self.assertEqual(plans(run, 20), before)

    def test_key_state_bounded(self) -> None:
        """Only the ``max_keys`` most recently seen keys keep state; an evicted key starts afresh."""
        definitions = define(discover().scenarios)
        run = ScenarioRunner(definitions, Clock(), "flaky", seed=1, max_keys=3)
        self.assertEqual(ScenarioRunner(definitions, Clock()).max_keys, 10_000)
        fresh = [p.fault for p in plans(run, 4, key="a")]
        self.assertEqual([f is not None for f in fresh], [True, True, True, False])
        for key in ["b", "c"]:
            plans(run, 1, key=key)
        plans(run, 1, key="a")  # "a" is now the most recently seen; "b" is the oldest
        plans(run, 1, key="d")
        self.assertEqual(run.keys_kept, 3)
        self.assertEqual(plans(run, 1, key="a")[0].fault, None)  # kept: still past its failures
        self.assertEqual([p.fault for p in plans(run, 2, key="b")], fresh[1:3])  # evicted: starts again
        for i in range(100):
            plans(run, 1, key=f"k{i}")
        self.assertEqual(run.keys_kept, 3)
        run.reset()
        self.assertEqual(run.keys_kept, 0)
        with self.assertRaises(ValueError):
            ScenarioRunner(definitions, Clock(), max_keys=0)

    def test_evicted_key_replays_its_random_sequence(self) -> None:
        """A key that fell out draws the same sequence again, as after ``reset``."""
        run, _ = runner("chaos")
        run = ScenarioRunner(run.definitions, Clock(), "chaos", seed=1, max_keys=1)
        first = plans(run, 5, key="a")
        plans(run, 1, key="b")
        self.assertEqual(plans(run, 5, key="a"), first)

    def test_header_picks_scenario(self) -> None:
        """A caller naming a scenario gets it; an unknown name is a 400 naming the header."""
        run, _ = runner()
        name, part = run.plan(chat(), caller(scenario="slow"))
        self.assertEqual((name, part.delay), ("slow", 5.0))
        with self.assertRaises(Exception) as raised:
            run.plan(chat(), caller(scenario="nope"))
        self.assertEqual(raised.exception.status, 400)
        self.assertEqual(raised.exception.param, "X-Mock-Scenario")


class BuiltinTests(unittest.TestCase):
    """Each built-in scenario's behaviour, on the scenario layer."""

    def test_profiles(self) -> None:
        """fast, slow, errors and timeout have the plan document's delays; default has none."""
        expected = {"default": None, "fast": 0.01, "slow": 5.0, "errors": 0.1, "timeout": 30.0}
        for name, delay in expected.items():
            run, _ = runner(name)
            self.assertEqual(plans(run, 1)[0].delay, delay, name)

    def test_no_errors(self) -> None:
        """default, fast, slow and timeout never fail by themselves."""
        for name in ("default", "fast", "slow", "timeout"):
            run, _ = runner(name)
            self.assertTrue(all(p.fault is None for p in plans(run, 500)), name)

    def test_errors_rate(self) -> None:
        """errors fails 10% of requests (measured over 5000), with 429, 500 and 503 all used."""
        run, _ = runner("errors", seed=7)
        faults = [p.fault for p in plans(run, 5000) if p.fault is not None]
        assert_near(self, len(faults) / 5000, 0.10, 0.015)
        counts = Counter(f.status for f in faults)
        self.assertEqual(set(counts), {429, 500, 503})
        for status in counts:
            self.assertGreater(counts[status], len(faults) / 5)

    def test_errors_over_http(self) -> None:
        """errors' failures reach the client as OpenAI-shaped errors; a 429 carries retry headers."""
        app, clock = scenario_app("errors", error_rate_percent=100, error_statuses=[429])
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY)
        clock.advance(0.1)
        self.assertEqual(conn.status, 429)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["type"], "rate_limit_error")
        self.assertIn("retry-after", conn.headers)

    def test_config_error_rate(self) -> None:
        """The configuration's error_rate_percent applies under default, but not under fast."""
        responses = ResponsesConfig(error_rate_percent=50)
        run, _ = runner("default", responses=responses)
        failed = sum(p.fault is not None for p in plans(run, 2000))
        assert_near(self, failed / 2000, 0.5, 0.05)
        run.switch("fast")
        self.assertTrue(all(p.fault is None for p in plans(run, 200)))

    def test_flaky(self) -> None:
        """flaky fails the first N requests of each key, then stops; keys are independent."""
        run, _ = runner("flaky")
        run.switch("flaky", {"fail_first": 2, "fail_status": 500})
        self.assertEqual([p.fault for p in plans(run, 4, key="a")], [StatusFault(500)] * 2 + [None] * 2)
        self.assertEqual(plans(run, 1, key="b")[0].fault, StatusFault(500))

    def test_flaky_keys_over_http(self) -> None:
        """Over HTTP, X-Mock-Key separates the counters of parallel tests."""
        app, clock = scenario_app("flaky")
        statuses = []
        for key in ("a", "a", "a", "a", "b"):
            statuses.append(RawHTTP(app).send("POST", PATH, CHAT_BODY, {"X-Mock-Key": key}).status)
        self.assertEqual(statuses, [503, 503, 503, 200, 503])

    def test_ratelimited_requests(self) -> None:
        """With 2 requests a minute, the third waits 30 s; the empty bucket is full again in 60 s."""
        run, clock = runner("ratelimited")
        run.switch("ratelimited", {"requests_per_minute": 2})
        first, second, third = plans(run, 3)
        self.assertIsNone(first.fault)
        self.assertIsNone(second.fault)
        self.assertEqual(third.fault.status, 429)
        headers = dict(third.fault.headers)
        self.assertEqual(headers["retry-after"], "30")
        self.assertEqual(headers["retry-after-ms"], "30000")
        self.assertEqual(headers["x-ratelimit-limit-requests"], "2")
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "0")
        self.assertEqual(headers["x-ratelimit-reset-requests"], "60s")
        clock.advance(29.9)
        self.assertEqual(plans(run, 1)[0].fault.status, 429)
        clock.advance(0.1)
        self.assertIsNone(plans(run, 1)[0].fault)

    def test_ratelimited_tokens(self) -> None:
        """Token buckets charge prompt plus max_tokens; the 429 tells the wait for the tokens."""
        run, clock = runner("ratelimited")
        run.switch("ratelimited", {"tokens_per_minute": 600})
        big = chat(max_tokens=490)
        self.assertIsNone(run.plan(big, caller())[1].fault)
        limited = run.plan(big, caller())[1].fault
        self.assertEqual(limited.status, 429)
        headers = dict(limited.headers)
        self.assertEqual(headers["x-ratelimit-limit-tokens"], "600")
        wait = int(headers["retry-after-ms"]) / 1000
        self.assertIn("tokens", limited.message)
        clock.advance(wait - 0.01)
        self.assertIsNotNone(run.plan(big, caller())[1].fault)
        clock.advance(0.01)
        self.assertIsNone(run.plan(big, caller())[1].fault)

    def _limited_after(self, passed: int, request: CompletionRequest, **params: int) -> dict[str, str]:
        """The headers of the 429 that follows ``passed`` accepted ``request``s under ratelimited ``params``."""
        run, _ = runner("ratelimited")
        run.switch("ratelimited", params)
        for part in plans(run, passed, request):
            self.assertIsNone(part.fault)
        limited = plans(run, 1, request)[0].fault
        self.assertEqual(limited.status, 429)
        return dict(limited.headers)

    def test_ratelimited_resets_per_bucket(self) -> None:
        """Each bucket's reset is its own time to refill fully; retry-after is the longer wait."""
        big = chat(max_tokens=140)
        headers = self._limited_after(2, big, requests_per_minute=60, tokens_per_minute=300)
        spent = 2 * request_tokens(big)
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "58")
        self.assertEqual(headers["x-ratelimit-reset-requests"], "2s")
        self.assertEqual(headers["x-ratelimit-remaining-tokens"], str(300 - spent))
        self.assertEqual(headers["x-ratelimit-reset-tokens"], f"{spent * 60 / 300:g}s")
        wait = (request_tokens(big) - (300 - spent)) * 60 / 300
        self.assertEqual(headers["retry-after-ms"], str(math.ceil(wait * 1000)))

    def test_ratelimited_resets_tokens_when_requests_limit(self) -> None:
        """A 429 for requests still tells the time the partly spent token bucket needs to refill."""
        small = chat(max_tokens=100)
        headers = self._limited_after(3, small, requests_per_minute=3, tokens_per_minute=1000)
        spent = 3 * request_tokens(small)
        self.assertEqual(headers["x-ratelimit-remaining-tokens"], str(1000 - spent))
        self.assertEqual(headers["x-ratelimit-reset-tokens"], f"{spent * 60 / 1000:g}s")
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "0")
        self.assertEqual(headers["x-ratelimit-reset-requests"], "60s")
        self.assertEqual(headers["retry-after"], "20")
        self.assertEqual(headers["retry-after-ms"], "20000")

    def test_ratelimited_too_large(self) -> None:
        """A request larger than a minute's tokens gets a 429 saying it is too large."""
        run, _ = runner("ratelimited")
        run.switch("ratelimited", {"requests_per_minute": 60, "tokens_per_minute": 100})
        fault = run.plan(chat(max_tokens=500), caller())[1].fault
        self.assertEqual(fault.status, 429)
        self.assertIn("Request too large", fault.message)
        headers = dict(fault.headers)
        self.assertEqual(headers["x-ratelimit-limit-requests"], "60")
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "60")
        self.assertEqual(headers["x-ratelimit-reset-requests"], "0s")
        self.assertEqual(headers["x-ratelimit-remaining-tokens"], "100")
        self.assertEqual(headers["x-ratelimit-reset-tokens"], "0s")

    def test_ratelimited_over_http(self) -> None:
        """Over HTTP the 429 carries the scenario's own retry headers."""
        app, clock = scenario_app("ratelimited", requests_per_minute=1)
        self.assertEqual(RawHTTP(app).send("POST", PATH, CHAT_BODY).status, 200)
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY)
        self.assertEqual(conn.status, 429)
        self.assertEqual(conn.headers["retry-after"], "60")
        self.assertEqual(conn.headers["x-ratelimit-limit-requests"], "1")

    def test_realistic_stream(self) -> None:
        """realistic streams with a jittered time to first token and an inter-token pause."""
        run, _ = runner("realistic")
        firsts = []
        for part in plans(run, 300, chat(stream=True)):
            self.assertEqual(part.delay, 0.0)
            self.assertEqual(part.timing.inter_token, 0.014)
            self.assertEqual(part.timing.jitter, 0.3)
            firsts.append(part.timing.first_token)
        self.assertTrue(all(0.28 <= f <= 0.52 for f in firsts))
        self.assertGreater(len(set(firsts)), 250)

    def test_realistic_whole(self) -> None:
        """A non-streamed realistic answer waits TTFT plus the reply's streaming time."""
        run, _ = runner("realistic")
        run.switch("realistic", {"jitter": 0.0})
        part = plans(run, 1)[0]
        self.assertAlmostEqual(part.delay, 0.4 + count_tokens(part.content) * 0.014)

    def test_realistic_over_http(self) -> None:
        """Over HTTP the first content chunk of a realistic stream arrives after about 400 ms."""
        app, clock = scenario_app("realistic", jitter=0.0)
        conn = RawHTTP(app).send("POST", PATH, {**CHAT_BODY, "stream": True})
        clock.advance(0.399)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(len(conn.events()), 2)

    def test_chaos_mix(self) -> None:
        """chaos mixes no fault, statuses, timeouts and mid-stream cuts, with random delays."""
        run, _ = runner("chaos", seed=3)
        parts = plans(run, 2000, chat(stream=True))
        kinds = Counter(type(p.fault).__name__ for p in parts)
        self.assertEqual(set(kinds), {"NoneType", "StatusFault", "TimeoutFault", "ChunkFault"})
        assert_near(self, kinds["NoneType"] / 2000, 0.7, 0.05)
        self.assertGreater(len({p.delay for p in parts}), 1900)
        self.assertTrue(all(0 <= p.delay <= 2.0 for p in parts))

    def test_chaos_whole_never_cuts(self) -> None:
        """Non-streamed chaos requests never get a chunk fault."""
        run, _ = runner("chaos")
        self.assertFalse(any(isinstance(p.fault, ChunkFault) for p in plans(run, 1000)))


class SeedTests(unittest.TestCase):
    """``--seed``: the same seed and requests give the same statuses, delays and content."""

    def outcomes(self, seed: int, scenario: str = "chaos") -> list[tuple]:
        """Status, completion time and content of a fixed sequence of requests."""
        app, clock = scenario_app(scenario, seed=seed, timeout_ms=100)
        start, out = clock.seconds(), []
        for index in range(40):
            body = {**CHAT_BODY, "stream": index % 2 == 0}
            conn = RawHTTP(app).send("POST", PATH, body)
            while not conn.complete and clock.seconds() - start < 10_000:
                clock.advance(0.05)
            out.append((conn.status, round(clock.seconds() - start, 2), _content(conn)))
        return out

    def test_same_seed(self) -> None:
        """Two servers with one seed answer one sequence identically."""
        self.assertEqual(self.outcomes(5), self.outcomes(5))

    def test_other_seed(self) -> None:
        """Another seed gives another sequence."""
        self.assertNotEqual(self.outcomes(5), self.outcomes(6))

    def test_keys_independent(self) -> None:
        """One key's draws do not depend on how many requests other keys made."""
        run_a, _ = runner("chaos", seed=9)
        run_b, _ = runner("chaos", seed=9)
        plans(run_b, 17, key="other")
        self.assertEqual(plans(run_a, 30, key="mine"), plans(run_b, 30, key="mine"))


def _content(conn: RawHTTP) -> bytes:
    """What a response said, its random completion ids left out."""
    return re.sub(rb"(chat)?cmpl-[A-Za-z0-9]+", b"ID", conn.body)


class PrecedenceTests(unittest.TestCase):
    """Request controls > scenario > configuration."""

    def test_scenario_over_config(self) -> None:
        """The scenario's delay beats the configuration's default_delay_ms."""
        app, clock = scenario_app("fast", Config(responses=ResponsesConfig(default_delay_ms=3000)))
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY)
        clock.advance(0.01)
        self.assertEqual(conn.status, 200)

    def test_config_under_default(self) -> None:
        """With no scenario opinion the configuration's delay applies."""
        app, clock = scenario_app("default", Config(responses=ResponsesConfig(default_delay_ms=3000)))
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY)
        clock.advance(2.999)
        self.assertIsNone(conn.status)
        clock.advance(0.001)
        self.assertEqual(conn.status, 200)

    def test_request_over_scenario(self) -> None:
        """``?fail=none`` and ``?delay=0`` beat a scenario that always fails slowly."""
        app, clock = scenario_app("errors", error_rate_percent=100, default_delay_ms=5000)
        conn = RawHTTP(app).send("POST", PATH + "?fail=none&delay=0", CHAT_BODY)
        self.assertEqual(conn.status, 200)
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY, {"X-Mock-Fail": "418"})
        clock.advance(5)
        self.assertEqual(conn.status, 418)

    def test_header_scenario_over_current(self) -> None:
        """``X-Mock-Scenario`` picks a scenario for one request; an unknown one is a 400."""
        app, clock = scenario_app("default")
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY, {"X-Mock-Scenario": "slow"})
        clock.advance(4.999)
        self.assertIsNone(conn.status)
        clock.advance(0.001)
        self.assertEqual(conn.status, 200)
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY, {"X-Mock-Scenario": "nope"})
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertEqual((conn.status, error["param"]), (400, "X-Mock-Scenario"))

    def test_layers_unit(self) -> None:
        """Where the scenario plans a fault the configuration's error rate is not drawn."""
        run, _ = runner("flaky", responses=ResponsesConfig(error_rate_percent=100))
        faults = [p.fault for p in plans(run, 5)]
        self.assertEqual(faults[:3], [StatusFault(503)] * 3)
        self.assertTrue(all(isinstance(f, StatusFault) for f in faults[3:]))


class ConnectionLimitTests(unittest.TestCase):
    """``max_connections``: extra connections get a 503 at once and the server stays healthy."""

    def connect(self, limiter: ConnectionLimit) -> tuple[object, StringTransport]:
        """One in-memory connection through ``limiter``."""
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto = limiter.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        return proto, transport

    def test_overflow_answered_and_recovered(self) -> None:
        """The connection over the limit gets a JSON 503 and a half-close; after one closes, a new one is served."""
        app, _ = make_app()
        clock = Clock()
        site = MockSite(app.resource())
        site.timeOut = None  # no idle timer on the real reactor
        limiter = ConnectionLimit(site, 1, clock)
        first, _ = self.connect(limiter)
        second, transport = self.connect(limiter)
        second.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "))
        for name in (b"X-Request-Id: req_", b"Openai-Version: 2020-10-01", b"Openai-Processing-Ms: "):
            self.assertIn(name, head)
        error = validate("ErrorResponse", json.loads(body))["error"]
        self.assertEqual(error["code"], "max_connections")
        self.assertTrue(transport.disconnecting)
        second.connectionLost(None)
        self.assertEqual(limiter.refused, 1)
        first.connectionLost(None)
        third, transport = self.connect(limiter)
        third.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", transport.value())
        self.assertEqual(limiter.active, 1)

    def test_linger(self) -> None:
        """A refused client that never leaves is dropped after LINGER seconds."""
        clock = Clock()
        limiter = ConnectionLimit(protocol.Factory.forProtocol(protocol.Protocol), 0, clock)
        _, transport = self.connect(limiter)
        clock.advance(LINGER)
        self.assertTrue(transport.disconnected)

    def test_option_and_config(self) -> None:
        """``--max-connections`` sets the configuration's limit."""
        options = tap.Options()
        options.parseOptions(["--max-connections", "7", "--no-https"])
        self.assertEqual(tap.config_from_options(options).server.max_connections, 7)


def _free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Twist(protocol.ProcessProtocol):
    """Watches a ``twist`` child for its "HTTP on" line and its end."""

    def __init__(self) -> None:
        self.ready: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        """Fire ``ready`` once the listener is announced."""
        self.output += data
        if b"mockllm: HTTP on" in self.output and not self.ready.called:
            self.ready.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: object) -> None:
        """Fire ``ended``; fail ``ready`` if the server never came up."""
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.output.decode("utf-8", "replace")))
        self.ended.callback(None)


class EndToEndTests(unittest.TestCase):
    """``twist mockllm --scenario errors`` as a real process, to a real client."""

    timeout = 60

    @defer.inlineCallbacks
    def test_errors_scenario(self) -> None:
        """Over a socket, about 10% of 300 requests fail with OpenAI-shaped 429/500/503s."""
        port = _free_port()
        child = _Twist()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        argv = [sys.executable, "-m", "twisted", "mockllm", "--scenario", "errors", "--no-https",
                "--http-port", str(port), "--seed", "11"]
        process = reactor.spawnProcess(child, sys.executable, argv, env=env, path=root)
        self.addCleanup(lambda: child.ended)
        self.addCleanup(lambda: process.pid and process.signalProcess("TERM"))
        yield child.ready
        client = treq_client(self)
        statuses = Counter()

        @defer.inlineCallbacks
        def one():
            response = yield client.post(f"http://127.0.0.1:{port}{PATH}", json=CHAT_BODY)
            body = yield response.json()
            statuses[response.code] += 1
            if response.code != 200:
                validate("ErrorResponse", body)

        for _ in range(6):  # 50 at a time: each waits the scenario's 100 ms
            yield defer.gatherResults([one() for _ in range(50)], consumeErrors=True)
        self.assertLessEqual(set(statuses), {200, 429, 500, 503})
        assert_near(self, (300 - statuses[200]) / 300, 0.10, 0.06)


class BrokenDropInProcessTests(unittest.TestCase):
    """A drop-in that fails to import, as a real ``twist mockllm`` reports it."""

    timeout = 30

    @defer.inlineCallbacks
    def test_one_line_no_traceback(self) -> None:
        """The start says once, in one line, which module failed and why; no traceback; the server runs."""
        from tests.processes import spawn

        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "drop"))
        with open(os.path.join(directory, "drop", f"broken_{uuid.uuid4().hex[:8]}.py"), "w") as f:
            f.write("import no_such_module_for_mockllm\n")
        server = spawn(self, ["--no-https", "--http-port", "0", "--scenario-path", "drop"], directory)
        yield server.ready
        yield server.stop()
        text = server.output.decode()
        self.assertNotIn("Traceback", text)
        self.assertEqual(text.count("No module named 'no_such_module_for_mockllm'"), 1, text)
        self.assertIn("the other scenarios are available", text)


class ServiceTests(unittest.TestCase):
    """``makeService`` wires the runner and the connection limit."""

    def test_make_service(self) -> None:
        """The service's app runs the chosen scenario with the given seed, behind the limit."""
        options = tap.Options()
        options.parseOptions(["--scenario", "flaky", "--seed", "3", "--no-https", "--http-port", "0",
                              "--max-connections", "5"])
        service = tap.makeService(options)
        [listener] = [child for child in service if isinstance(child, ListenerService)]
        self.assertIsInstance(listener.factory, ConnectionLimit)
        self.assertEqual(listener.factory.limit, 5)

    def test_default_scenarios(self) -> None:
        """``default_scenarios`` alone gives the built-ins and the configuration's scenarios, on default."""
        from mockllm.server import default_scenarios

        config = replace(Config(), scenarios={"quick": {"default_delay_ms": 1}})
        runner = default_scenarios(config, Clock(), seed=1)
        self.assertEqual(runner.current, "default")
        self.assertIn("quick", runner.describe()["available"])
