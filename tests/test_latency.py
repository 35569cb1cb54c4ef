"""
The latency model (docs/latency.md): ``ttft_ms``/``itl_ms`` and ``reply_tokens`` per request,
latency tables per model and per scenario, jitter distributions and load-aware pauses.

Timing is asserted on a ``task.Clock`` (in memory) or, over a real socket, by the server's own
clock (the exchange's times); no test measures wall-clock time.
"""

from __future__ import annotations

import random

from twisted.trial import unittest

from mockllm.behaviour.compose import compose
from mockllm.behaviour.request import CompletionRequest
from tests.support import CHAT_BODY, RawHTTP, make_app

PATH = "/v1/chat/completions"
STREAM = {**CHAT_BODY, "stream": True}


def content_events(conn: RawHTTP) -> list[str]:
    """The content deltas of a chat stream received so far."""
    import json

    out = []
    for event in conn.events():
        if event == "[DONE]":
            continue
        for choice in json.loads(event)["choices"]:
            text = choice["delta"].get("content")
            if text:
                out.append(text)
    return out


def arrivals(clock, conn: RawHTTP, step: float, steps: int) -> list[int]:
    """How many events ``conn`` has after each of ``steps`` advances of ``step`` seconds."""
    counts = []
    for _ in range(steps):
        clock.advance(step)
        counts.append(len(conn.events()))
    return counts


class StreamControlTests(unittest.TestCase):
    """``ttft_ms`` and ``itl_ms`` pace a stream."""

    def test_query_controls(self) -> None:
        """The role event at once, the first content after ttft_ms, each later event itl_ms apart."""
        app, clock = make_app()
        conn = RawHTTP(app).send("POST", PATH + "?ttft_ms=300&itl_ms=50", STREAM)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.299)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(len(conn.events()), 2)
        self.assertEqual(arrivals(clock, conn, 0.05, 3), [3, 4, 5])

    def test_headers(self) -> None:
        """``X-Mock-TTFT-Ms`` and ``X-Mock-ITL-Ms`` do the same as the query."""
        app, clock = make_app()
        conn = RawHTTP(app).send("POST", PATH, STREAM, {"X-Mock-TTFT-Ms": "200", "X-Mock-ITL-Ms": "10"})
        clock.advance(0.199)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(arrivals(clock, conn, 0.01, 2), [3, 4])

    def test_ttft_alone_keeps_the_interval(self) -> None:
        """``ttft_ms`` alone leaves the inter-token pause to the layers below ([responses] 20 ms)."""
        app, clock = make_app()
        conn = RawHTTP(app).send("POST", PATH + "?ttft_ms=100", STREAM)
        clock.advance(0.101)
        self.assertEqual(len(conn.events()), 2)
        self.assertEqual(arrivals(clock, conn, 0.01, 4), [2, 3, 3, 4])

    def test_control_beats_the_scenario(self) -> None:
        """A request's ``ttft_ms`` wins over a scenario's stream timing (realistic's ~400 ms)."""
        from tests.test_scenarios import scenario_app

        app, clock = scenario_app("realistic", jitter=0.0)
        conn = RawHTTP(app).send("POST", PATH + "?ttft_ms=50", STREAM)
        clock.advance(0.051)
        self.assertEqual(len(conn.events()), 2)

    def test_rule_gives_latency(self) -> None:
        """A response rule's ``ttft_ms`` paces the streams it matches."""
        from mockllm.config import Config

        app, clock = make_app(Config(rules=({"model": "gpt-4o-mini", "ttft_ms": 500},)))
        conn = RawHTTP(app).send("POST", PATH, STREAM)
        clock.advance(0.499)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(len(conn.events()), 2)


class ScenarioTimingPartTests(unittest.TestCase):
    """A scenario plugin may give part of the pacing (``mockllm.scenario.TimingPart``)."""

    def test_part_keeps_the_rest(self) -> None:
        """A scenario's ``TimingPart(first_token=...)`` sets the time to first token; the inter-token pause stays the configuration's (20 ms)."""
        from mockllm.scenario import PlanPart, TimingPart

        class Slow:
            """A scenario layer with an opinion on the first token only."""

            def plan(self, request, caller):
                """A 300 ms time to first token."""
                return "slow", PlanPart(timing=TimingPart(first_token=0.3))

        app, clock = make_app(scenarios=Slow())
        conn = RawHTTP(app).send("POST", PATH, STREAM)
        clock.advance(0.299)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(len(conn.events()), 2)
        self.assertEqual(arrivals(clock, conn, 0.02, 2), [3, 4])


class WholeAnswerTests(unittest.TestCase):
    """A whole answer waits the generation time only when a latency is asked for."""

    def test_waits_ttft_and_itl_per_token(self) -> None:
        """5 tokens at ttft 100 ms, itl 10 ms: the answer comes after 100 + 4 × 10 ms."""
        app, clock = make_app()
        conn = RawHTTP(app).send("POST", PATH + "?ttft_ms=100&itl_ms=10&reply_tokens=5", CHAT_BODY)
        clock.advance(0.139)
        self.assertIsNone(conn.status)
        clock.advance(0.002)
        self.assertEqual(conn.json()["usage"]["completion_tokens"], 5)

    def test_default_is_immediate(self) -> None:
        """Without a latency asked for, a whole answer is sent at once (the stream interval is for streams)."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", PATH, CHAT_BODY)
        self.assertTrue(conn.complete)


class BadControlTests(unittest.TestCase):
    """A bad latency or token control is a 400 naming it, in the dialect's error envelope."""

    def refused(self, path: str, query: str, body: dict) -> dict:
        """The error object of the answer to ``query``."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", f"{path}?{query}", body)
        self.assertEqual(conn.status, 400)
        return conn.json()["error"]

    def test_each_control(self) -> None:
        """Not a number, negative or above the cap: ``invalid_value`` with ``param`` the control."""
        for query, param in [("ttft_ms=x", "ttft_ms"), ("itl_ms=-5", "itl_ms"), ("ttft_ms=600001", "ttft_ms"),
                             ("reply_tokens=1.5", "reply_tokens"), ("reply_tokens=100001", "reply_tokens")]:
            error = self.refused(PATH, query, CHAT_BODY)
            self.assertEqual((error["param"], error["code"], error["type"]), (param, "invalid_value", "invalid_request_error"))

    def test_responses_dialect(self) -> None:
        """The Responses API refuses them in its own envelope too."""
        error = self.refused("/v1/responses", "itl_ms=no", {"model": "gpt-4o-mini", "input": "Hi"})
        self.assertEqual(error["param"], "itl_ms")


class ReplyTokensTests(unittest.TestCase):
    """``reply_tokens=N``: each text choice is exactly N completion tokens."""

    def test_whole_answer(self) -> None:
        """``usage.completion_tokens`` is N, however long the drawn prose would have been."""
        app, _ = make_app()
        for n in (1, 7, 250):
            conn = RawHTTP(app).send("POST", PATH + f"?reply_tokens={n}", CHAT_BODY)
            self.assertEqual(conn.json()["usage"]["completion_tokens"], n)
            self.assertEqual(conn.json()["choices"][0]["finish_reason"], "stop")

    def test_stream_has_n_content_chunks(self) -> None:
        """A stream of N tokens has N content chunks and reports N in its usage."""
        import json

        app, clock = make_app()
        body = {**STREAM, "stream_options": {"include_usage": True}}
        conn = RawHTTP(app).send("POST", PATH, body, {"X-Mock-Reply-Tokens": "12"})
        clock.pump([0.02] * 20)
        self.assertEqual(len(content_events(conn)), 12)
        self.assertEqual(json.loads(conn.events()[-2])["usage"]["completion_tokens"], 12)

    def test_max_tokens_and_n(self) -> None:
        """Above ``max_tokens`` each of the ``n`` choices stops there with ``length``."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", PATH + "?reply_tokens=9", {**CHAT_BODY, "n": 3, "max_tokens": 4})
        answer = conn.json()
        self.assertEqual(answer["usage"]["completion_tokens"], 12)
        self.assertEqual([c["finish_reason"] for c in answer["choices"]], ["length"] * 3)
        conn = RawHTTP(app).send("POST", PATH + "?reply_tokens=3", {**CHAT_BODY, "n": 2, "max_tokens": 4})
        self.assertEqual(conn.json()["usage"]["completion_tokens"], 6)

    def test_zero(self) -> None:
        """``reply_tokens=0``: an empty reply."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", PATH + "?reply_tokens=0", CHAT_BODY)
        self.assertEqual((conn.json()["choices"][0]["message"]["content"], conn.json()["usage"]["completion_tokens"]), ("", 0))

    def test_fixed_text_is_cut_or_continued(self) -> None:
        """A fixed text (a rule's, a scenario's) is cut to N pieces, or continued with drawn prose."""
        request = CompletionRequest("chat", "gpt-4o-mini", False, False, ("hi",), {})
        short = compose(request, random.Random(1), "Hello there", 30).choices[0]
        self.assertEqual((len(short.pieces), short.text[:11]), (30, "Hello there"))
        long = compose(request, random.Random(1), "one two three four", 2).choices[0]
        self.assertEqual(long.pieces, ("one", " two"))


def latency_app(toml: str, current: str = "default", seed: int = 0):
    """An app (on a clock) with the scenario layer of the configuration ``toml``."""
    import tomllib

    from mockllm.config.toml import parse_config
    from tests.test_scenarios import scenario_app

    return scenario_app(current, parse_config(tomllib.loads(toml)), seed)


GPT4O = """
[models.latency."gpt-4o"]
ttft_ms = 300
itl_ms = 40
"""


class ModelLatencyTests(unittest.TestCase):
    """``[models.latency."ID"]``: the configuration's latency for one model."""

    def test_parsed(self) -> None:
        """The keys given over :class:`ModelLatency`'s defaults; a model without a table has none."""
        import tomllib

        from mockllm.config.model import ModelLatency
        from mockllm.config.toml import parse_config

        config = parse_config(tomllib.loads(GPT4O + 'jitter = "normal"\njitter_pct = 10\n'))
        self.assertEqual(config.models.latency, {"gpt-4o": ModelLatency(300, 40, "normal", 10.0)})

    def test_refused(self) -> None:
        """An unknown key, jitter name or a value out of range names the table and key."""
        import tomllib

        from mockllm.config.toml import parse_config

        for text, where in [("ttft = 1", "ttft"), ('jitter = "gamma"', "jitter"), ("jitter_pct = 101", "jitter_pct"),
                            ("itl_ms = -1", "itl_ms"), ("load_ms_per_stream = true", "load_ms_per_stream")]:
            with self.assertRaises(ValueError) as caught:
                parse_config(tomllib.loads(f'[models.latency."gpt-4o"]\n{text}\n'))
            self.assertTrue(str(caught.exception).startswith(f'[models.latency."gpt-4o"] {where}:'), caught.exception)

    def test_paces_that_model_only(self) -> None:
        """gpt-4o streams at its table's pace; gpt-4o-mini keeps the stream interval."""
        app, clock = latency_app(GPT4O)
        slow = RawHTTP(app).send("POST", PATH, {**STREAM, "model": "gpt-4o"})
        quick = RawHTTP(app).send("POST", PATH, STREAM)
        clock.advance(0.021)
        self.assertEqual((len(slow.events()), len(quick.events())), (1, 2))
        clock.advance(0.28)
        self.assertEqual(len(slow.events()), 2)
        self.assertEqual(arrivals(clock, slow, 0.04, 2), [3, 4])

    def test_whole_answer_waits(self) -> None:
        """A whole gpt-4o answer waits 300 ms + 40 ms per further token; gpt-4o-mini's comes at once."""
        app, clock = latency_app(GPT4O)
        conn = RawHTTP(app).send("POST", PATH + "?reply_tokens=3", {**CHAT_BODY, "model": "gpt-4o"})
        self.assertTrue(RawHTTP(app).send("POST", PATH, CHAT_BODY).complete)
        clock.advance(0.379)
        self.assertIsNone(conn.status)
        clock.advance(0.002)
        self.assertTrue(conn.complete)

    def test_request_beats_model(self) -> None:
        """``itl_ms`` of the request with the model's TTFT: each field from the first layer giving it."""
        app, clock = latency_app(GPT4O)
        conn = RawHTTP(app).send("POST", PATH + "?itl_ms=5", {**STREAM, "model": "gpt-4o"})
        clock.advance(0.301)
        self.assertEqual(arrivals(clock, conn, 0.005, 2), [3, 4])

    def test_example_file(self) -> None:
        """mockllm/examples/latency.toml loads: two models' tables and a scenario's."""
        from importlib import resources

        from mockllm.config.toml import load_config

        config = load_config(str(resources.files("mockllm") / "examples" / "latency.toml"))
        self.assertEqual(set(config.models.latency), {"gpt-4o", "gpt-4o-mini"})
        self.assertEqual(config.scenarios["busy-hour"]["latency"]["ttft_ms"], 1500)

    def test_printed_config_loads_back(self) -> None:
        """``--print-config`` writes a table's keys (its unset ones left out) so the file loads back."""
        import tomllib

        from mockllm.config.describe import render
        from mockllm.config.toml import parse_config

        config = parse_config(tomllib.loads('[models.latency."gpt-4o"]\nitl_ms = 9\n'))
        self.assertEqual(parse_config(tomllib.loads(render(config))).models.latency, config.models.latency)

    def test_realistic_waits_once(self) -> None:
        """Under ``realistic`` (which times whole answers itself) a model's table adds no second wait."""
        app, clock = latency_app(GPT4O, "realistic")
        conn = RawHTTP(app).send("POST", PATH, {**CHAT_BODY, "model": "gpt-4o"})
        clock.advance(2.0)
        self.assertTrue(conn.complete)
        self.assertEqual(len(clock.getDelayedCalls()), 0)


BUSY = GPT4O + """
[scenarios.busy.latency]
ttft_ms = 1000
"""


class ScenarioLatencyTests(unittest.TestCase):
    """A scenario's ``latency`` parameter: the scenario layer's timing, over the model's."""

    def test_over_the_model(self) -> None:
        """The scenario's TTFT with the model's ITL (the key it leaves out)."""
        app, clock = latency_app(BUSY, "busy")
        conn = RawHTTP(app).send("POST", PATH, {**STREAM, "model": "gpt-4o"})
        clock.advance(0.999)
        self.assertEqual(len(conn.events()), 1)
        clock.advance(0.002)
        self.assertEqual(arrivals(clock, conn, 0.04, 2), [3, 4])

    def test_request_beats_scenario(self) -> None:
        """``?ttft_ms=`` beats the scenario's; ``X-Mock-Scenario`` picks the scenario per request."""
        app, clock = latency_app(BUSY)
        conn = RawHTTP(app).send("POST", PATH + "?ttft_ms=10", {**STREAM, "model": "gpt-4o"}, {"X-Mock-Scenario": "busy"})
        clock.advance(0.011)
        self.assertEqual(len(conn.events()), 2)

    def test_switched_at_runtime(self) -> None:
        """The admin API's switch takes a latency table too, checked like the file's."""
        from mockllm.scenario import ScenarioRunner, define, discover
        from twisted.internet.task import Clock

        run = ScenarioRunner(define(discover().scenarios), Clock())
        run.switch("default", {"latency": {"itl_ms": 7, "jitter": "lognormal"}})
        self.assertEqual(run.describe()["parameters"]["latency"], {"itl_ms": 7, "jitter": "lognormal"})
        with self.assertRaises(ValueError):
            run.switch("default", {"latency": {"itl_ms": "fast"}})


class JitterTests(unittest.TestCase):
    """Each jitter distribution: drawn with the request's generator, never negative."""

    def pauses(self, distribution: str, pct: float, seed: int = 1, count: int = 2000) -> list[float]:
        """``count`` inter-token pauses of 10 ms under ``distribution`` with spread ``pct``."""
        from mockllm.behaviour.engine import paced
        from mockllm.behaviour.plan import StreamTiming

        pause = paced(StreamTiming(0.01, 0.01, pct / 100, distribution), random.Random(seed))
        return [pause(False, sent) for sent in range(1, count + 1)]

    def test_none(self) -> None:
        """``none``: every pause is the configured one, whatever the spread."""
        self.assertEqual(set(self.pauses("none", 50)), {0.01})

    def test_uniform_band(self) -> None:
        """``uniform``: within ±spread of the pause, and varied."""
        pauses = self.pauses("uniform", 20)
        self.assertTrue(all(0.008 <= p <= 0.012 for p in pauses))
        self.assertGreater(len(set(pauses)), 1900)

    def test_never_negative(self) -> None:
        """A normal jitter as wide as the pause itself is cut at 0; log-normal is always above it."""
        normal, lognormal = self.pauses("normal", 100), self.pauses("lognormal", 100)
        self.assertEqual(min(normal), 0.0)
        self.assertGreater(min(lognormal), 0.0)

    def test_means(self) -> None:
        """``normal`` and ``lognormal`` keep the configured pause as their mean."""
        for distribution in ("normal", "lognormal"):
            pauses = self.pauses(distribution, 10, count=5000)
            self.assertLess(abs(sum(pauses) / len(pauses) - 0.01), 0.0002)

    def test_seeded(self) -> None:
        """The same seed gives the same pauses; another seed others."""
        self.assertEqual(self.pauses("lognormal", 30), self.pauses("lognormal", 30))
        self.assertNotEqual(self.pauses("lognormal", 30), self.pauses("lognormal", 30, seed=2))

    def test_unknown_distribution(self) -> None:
        """A :class:`StreamTiming` refuses a distribution it cannot draw."""
        from mockllm.behaviour.plan import StreamTiming

        with self.assertRaises(ValueError):
            StreamTiming(distribution="gamma")


JITTERY = """
[models.latency."gpt-4o-mini"]
ttft_ms = 100
itl_ms = 10
jitter = "normal"
jitter_pct = 30
"""


def schedule(seed: int) -> list[float]:
    """When each pause of one stream of a seeded server ends (the clock's pending calls, in order)."""
    app, clock = latency_app(JITTERY, seed=seed)
    conn = RawHTTP(app).send("POST", PATH, STREAM, {"X-Mock-Key": "k"})
    times = []
    while clock.getDelayedCalls():
        call = clock.getDelayedCalls()[0]
        times.append(round(call.getTime() - clock.seconds(), 9))
        clock.advance(call.getTime() - clock.seconds())
    assert conn.complete
    return times


class SeededJitterTests(unittest.TestCase):
    """``--seed`` reproduces a stream's jittered pauses."""

    def test_same_seed_same_pauses(self) -> None:
        """Two servers with one seed pace the same request alike; another seed paces it otherwise."""
        first = schedule(7)
        self.assertEqual(first, schedule(7))
        self.assertNotEqual(first, schedule(8))
        self.assertGreater(len(set(first)), 5)


LOADED = """
[models.latency."gpt-4o-mini"]
ttft_ms = 100
itl_ms = 20
load_ms_per_stream = 10
"""


class LoadTests(unittest.TestCase):
    """``load_ms_per_stream``: pauses grow with the other streams open."""

    def test_pauses_grow_with_open_streams(self) -> None:
        """A lone stream waits its TTFT; a second one opened beside it 10 ms more, a third 20 ms more."""
        app, clock = latency_app(LOADED)
        load = app.completions._engine.load  # the app's one counter
        streams = [RawHTTP(app).send("POST", PATH, STREAM) for _ in range(3)]
        self.assertEqual(load.open, 3)
        clock.advance(0.101)
        self.assertEqual([len(s.events()) for s in streams], [2, 1, 1])
        clock.advance(0.010)
        self.assertEqual([len(s.events()) for s in streams], [2, 2, 1])
        clock.advance(0.010)
        self.assertEqual([len(s.events()) for s in streams], [2, 2, 2])

    def test_counted_until_the_end(self) -> None:
        """A stream counts while it is open: until its last event, or until its client leaves."""
        app, clock = latency_app(LOADED)
        load = app.completions._engine.load
        done, left = RawHTTP(app).send("POST", PATH, STREAM), RawHTTP(app).send("POST", PATH, STREAM)
        self.assertEqual(load.open, 2)
        left.disconnect()
        self.assertEqual(load.open, 1)
        clock.pump([0.05] * 200)
        self.assertTrue(done.complete)
        self.assertEqual(load.open, 0)

    def test_whole_answer_counts_open_streams(self) -> None:
        """A whole answer's wait grows with the streams open when it starts (it is not one itself)."""
        app, clock = latency_app(LOADED)
        RawHTTP(app).send("POST", PATH, STREAM)
        whole = RawHTTP(app).send("POST", PATH + "?reply_tokens=1", CHAT_BODY)
        clock.advance(0.109)
        self.assertIsNone(whole.status)
        clock.advance(0.002)
        self.assertTrue(whole.complete)


class SDKLatencyTests(unittest.TestCase):
    """Over a real socket, the official SDK streams a latency-shaped reply (timed by the server's clock)."""

    timeout = 30

    def setUp(self) -> None:
        """A server on a loopback port, on the real reactor, keeping its finished exchanges."""
        from twisted.internet import reactor

        from mockllm.http.routes import MockLLM
        from mockllm.config import Config
        from tests.support import Finished, listen

        self.finished = Finished()
        self.base = listen(self, MockLLM(Config(), reactor, observers=[self.finished]))

    async def test_stream_shape(self) -> None:
        """``reply_tokens=20`` gives 20 content chunks; the first token comes at least ttft_ms after the request."""
        import openai
        from twisted.internet.threads import deferToThread

        client = openai.OpenAI(base_url=self.base + "/v1", api_key="sk-test", timeout=10, max_retries=0)
        self.addCleanup(client.close)

        def run():
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
                stream_options={"include_usage": True}, extra_query={"itl_ms": "2"},
                extra_headers={"X-Mock-TTFT-Ms": "150", "X-Mock-Reply-Tokens": "20"},
            )
            return list(stream)

        chunks = await deferToThread(run)
        contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        self.assertEqual((len(contents), chunks[-1].usage.completion_tokens), (20, 20))
        (ex,) = [ex for ex in self.finished if ex.path.endswith("completions")]
        self.assertGreaterEqual(ex.first_token_at - ex.started, 0.15)
        self.assertGreaterEqual(ex.finished_at - ex.first_token_at, 0.002 * 19)


class SharedDraws:
    """Two jittered streams drawing on one shared generator (a key's), stepped in some order."""

    @staticmethod
    def waits(order: str) -> dict[str, list[float]]:
        """The pauses of streams ``a`` and ``b`` when their steps are taken in ``order`` (``"aabb"``, ``"abab"``...)."""
        import json as _json

        from twisted.internet.task import Clock

        from mockllm.behaviour.engine import Engine
        from mockllm.behaviour.plan import Plan, StreamTiming
        from mockllm.behaviour.steps import Wait
        from mockllm.dialects.chat import ChatCompletions

        dialect, shared = ChatCompletions(), random.Random(3)
        plan = Plan(timing=StreamTiming(0.01, 0.01, 0.3, "normal"), draws=shared)
        engine = Engine(Clock(), random.Random(0), random.Random(0))
        request = dialect.parse(_json.dumps(STREAM).encode(), None)
        scripts = {name: iter(engine.script(dialect, request, plan)) for name in "ab"}
        waits: dict[str, list[float]] = {"a": [], "b": []}
        for name in order:
            for step in scripts[name]:
                if isinstance(step, Wait):
                    waits[name].append(step.seconds)
                    break
        return waits


class SharedDrawsTests(unittest.TestCase):
    """A stream's jittered pauses come from a generator of its own, seeded as it opens."""

    def test_pauses_do_not_depend_on_interleaving(self) -> None:
        """Two streams opened one after the other on one key's generator pause alike whether their
        pauses are taken one stream after the other or alternately (and the pauses do vary)."""
        import itertools

        # Open a, then b (their first steps), then take the rest in two different orders.
        sequential = SharedDraws.waits("ab" + "a" * 40 + "b" * 40)
        alternating = SharedDraws.waits("ab" + "ab" * 40)
        self.assertEqual(sequential, alternating)
        self.assertGreater(len(set(itertools.chain(*sequential.values()))), 10)
