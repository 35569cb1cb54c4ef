"""
Rate-limit headers and buckets: every charged answer tells the key's standing in
``x-ratelimit-*``; the buckets count down per key and model and refill on the clock; the
``ratelimited`` scenario enforces them with the real 429.  In memory on a ``task.Clock``,
and with the official SDK over a real socket.
"""

from __future__ import annotations

import json
from dataclasses import replace

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.behaviour.ratelimit import Demand, MemoryBuckets, RateLimiter
from mockllm.behaviour.request import CompletionRequest
from mockllm.config import Config, ModelsConfig
from mockllm.config.model import DEFAULT_LIMITS, ModelLimits
from mockllm.config.toml import parse_config
from mockllm.http.routes import MockLLM
from mockllm.scenario import ScenarioRunner, define, discover
from tests.limits_support import LIMIT_HEADERS, limit_headers, limited_app, post
from tests.support import CHAT_BODY, RawHTTP, listen, validate

#: A chat body whose prompt counts 7 tokens (``usage.prompt_tokens``).
PROMPT_TOKENS = 7


def with_limits(**limits: ModelLimits) -> Config:
    """The default configuration with ``limits`` for the models named (``gpt_4o_mini`` for gpt-4o-mini)."""
    given = {name.replace("_", "-"): value for name, value in limits.items()}
    return Config(models=replace(ModelsConfig(), limits={**DEFAULT_LIMITS, **given}))


class HeaderTests(unittest.TestCase):
    """Every completion carries the key's standing; it counts down and comes back."""

    def setUp(self) -> None:
        self.limited = limited_app()

    def test_first_answer_tells_full_buckets_minus_itself(self) -> None:
        """The first answer shows gpt-4o-mini's tier-1 limits, one request and its tokens spent."""
        conn = post(self.limited.app)
        self.assertEqual(conn.status, 200)
        validate("CreateChatCompletionResponse", conn.json())
        headers = limit_headers(conn)
        self.assertEqual(sorted(headers), sorted(LIMIT_HEADERS))
        self.assertEqual(headers["x-ratelimit-limit-requests"], "500")
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "499")
        self.assertEqual(headers["x-ratelimit-limit-tokens"], "200000")
        self.assertEqual(headers["x-ratelimit-remaining-tokens"], str(200000 - PROMPT_TOKENS))
        self.assertEqual(headers["x-ratelimit-reset-requests"], "0.12s")  # 1 of 500 a minute
        self.assertEqual(headers["x-ratelimit-reset-tokens"], "0.002s")  # 7 of 200000 a minute

    def test_counts_down_and_refills_on_the_clock(self) -> None:
        """Each request takes one; time gives them back at the limit per minute, up to full."""
        app, clock = self.limited.app, self.limited.clock
        remaining = [limit_headers(post(app))["x-ratelimit-remaining-requests"] for _ in range(3)]
        self.assertEqual(remaining, ["499", "498", "497"])
        clock.advance(0.24)  # two requests' worth at 500 a minute
        self.assertEqual(limit_headers(post(app))["x-ratelimit-remaining-requests"], "498")
        clock.advance(60)
        headers = limit_headers(post(app))
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "499")
        self.assertEqual(headers["x-ratelimit-remaining-tokens"], str(200000 - PROMPT_TOKENS))

    def test_tokens_count_prompt_and_max_tokens(self) -> None:
        """The token bucket is charged the prompt plus max_tokens (max_completion_tokens too)."""
        app = self.limited.app
        first = limit_headers(post(app, dict(CHAT_BODY, max_tokens=1000)))
        self.assertEqual(first["x-ratelimit-remaining-tokens"], str(200000 - PROMPT_TOKENS - 1000))
        second = limit_headers(post(app, dict(CHAT_BODY, max_completion_tokens=500)))
        self.assertEqual(second["x-ratelimit-remaining-tokens"], str(200000 - 2 * PROMPT_TOKENS - 1500))

    def test_keys_and_models_have_their_own_buckets(self) -> None:
        """X-Mock-Key, the API key and the model each select a bucket of their own."""
        app = self.limited.app
        post(app, headers={"X-Mock-Key": "alice"})
        alice = limit_headers(post(app, headers={"X-Mock-Key": "alice"}))
        bob = limit_headers(post(app, headers={"X-Mock-Key": "bob"}))
        self.assertEqual(alice["x-ratelimit-remaining-requests"], "498")
        self.assertEqual(bob["x-ratelimit-remaining-requests"], "499")
        carol = limit_headers(post(app, headers={"Authorization": "Bearer sk-carol"}))
        self.assertEqual(carol["x-ratelimit-remaining-requests"], "499")
        gpt4o = limit_headers(post(app, dict(CHAT_BODY, model="gpt-4o"), headers={"X-Mock-Key": "alice"}))
        self.assertEqual(gpt4o["x-ratelimit-limit-tokens"], "30000")
        self.assertEqual(gpt4o["x-ratelimit-remaining-requests"], "499")

    def test_streams_and_faults_carry_them(self) -> None:
        """A stream's head and a requested fault's answer carry the standing too."""
        app = self.limited.app
        stream = post(app, dict(CHAT_BODY, stream=True))
        self.assertEqual(limit_headers(stream)["x-ratelimit-remaining-requests"], "499")
        failed = post(app, path="/v1/chat/completions?fail=503")
        self.assertEqual(failed.status, 503)
        self.assertEqual(limit_headers(failed)["x-ratelimit-remaining-requests"], "498")

    def test_legacy_completions_carry_them(self) -> None:
        """``/v1/completions`` is charged and answers with the headers as well."""
        conn = post(self.limited.app, {"model": "gpt-3.5-turbo", "prompt": "Hello"}, path="/v1/completions")
        self.assertEqual(conn.status, 200)
        self.assertEqual(limit_headers(conn)["x-ratelimit-limit-requests"], "3500")

    def test_refused_requests_are_not_charged(self) -> None:
        """A body refused by validation answers without the headers, and costs nothing."""
        app = self.limited.app
        bad = post(app, {"model": "gpt-4o-mini"})
        self.assertEqual(bad.status, 400)
        self.assertEqual(limit_headers(bad), {})
        self.assertEqual(limit_headers(post(app))["x-ratelimit-remaining-requests"], "499")

    def test_seeded_429_keeps_its_own_headers(self) -> None:
        """``fail=429&retry_after=`` still tells the wait it was asked to."""
        conn = post(self.limited.app, path="/v1/chat/completions?fail=429&retry_after=2500")
        self.assertEqual(conn.status, 429)
        self.assertEqual(conn.headers["x-ratelimit-reset-requests"], "2.5s")
        self.assertEqual(conn.headers["retry-after-ms"], "2500")

    def test_empty_bucket_without_the_scenario_still_answers(self) -> None:
        """Under ``default`` a key past its limit is still answered, showing 0 remaining."""
        limited = limited_app(with_limits(gpt_4o_mini=ModelLimits(2, 200000, 128000)))
        statuses = [post(limited.app) for _ in range(3)]
        self.assertEqual([conn.status for conn in statuses], [200, 200, 200])
        self.assertEqual(limit_headers(statuses[-1])["x-ratelimit-remaining-requests"], "0")

    def test_admin_reset_refills(self) -> None:
        """``POST /__admin/reset`` makes every bucket full again."""
        app = self.limited.app
        post(app)
        post(app)
        self.assertEqual(RawHTTP(app).send("POST", "/__admin/reset").status, 200)
        self.assertEqual(limit_headers(post(app))["x-ratelimit-remaining-requests"], "499")


class ScenarioTests(unittest.TestCase):
    """The ``ratelimited`` scenario enforces the configured buckets with the real 429."""

    def test_configured_limit_enforced(self) -> None:
        """With 2 requests a minute, the third is a 429 telling the 30 s wait; then it passes."""
        limited = limited_app(with_limits(gpt_4o_mini=ModelLimits(2, 200000, 128000)), "ratelimited")
        first, second, third = (post(limited.app) for _ in range(3))
        self.assertEqual([first.status, second.status], [200, 200])
        self.assertEqual(limit_headers(second)["x-ratelimit-remaining-requests"], "0")
        self.assertEqual(third.status, 429)
        error = validate("ErrorResponse", third.json())["error"]
        self.assertEqual(error["code"], "rate_limit_exceeded")
        self.assertEqual(
            error["message"], "Rate limit reached for gpt-4o-mini on requests per min. Limit: 2. Please try again in 30.000s."
        )
        self.assertEqual(third.headers["retry-after"], "30")
        self.assertEqual(third.headers["retry-after-ms"], "30000")
        self.assertEqual(third.headers["x-ratelimit-limit-requests"], "2")
        self.assertEqual(third.headers["x-ratelimit-reset-requests"], "60s")
        limited.clock.advance(29.9)
        self.assertEqual(post(limited.app).status, 429)
        limited.clock.advance(0.1)
        self.assertEqual(post(limited.app).status, 200)

    def test_token_limit_enforced(self) -> None:
        """A request whose tokens the bucket lacks waits for the tokens, as the 429 says."""
        limited = limited_app(with_limits(gpt_4o_mini=ModelLimits(500, 1000, 128000)), "ratelimited")
        body = dict(CHAT_BODY, max_tokens=600)
        self.assertEqual(post(limited.app, body).status, 200)
        refused = post(limited.app, body)
        self.assertEqual(refused.status, 429)
        self.assertIn("on tokens per min", refused.json()["error"]["message"])
        wait = int(refused.headers["retry-after-ms"]) / 1000
        self.assertAlmostEqual(wait, (607 - (1000 - 607)) * 60 / 1000, places=2)
        limited.clock.advance(wait)
        self.assertEqual(post(limited.app, body).status, 200)

    def test_too_large_request(self) -> None:
        """A request over a whole minute's tokens gets OpenAI's "Request too large" 429."""
        limited = limited_app(with_limits(gpt_4o_mini=ModelLimits(500, 100, 128000)), "ratelimited")
        refused = post(limited.app, dict(CHAT_BODY, max_tokens=500))
        self.assertEqual(refused.status, 429)
        self.assertIn("Request too large for gpt-4o-mini on tokens per min (TPM): Limit 100, Requested 507.",
                      refused.json()["error"]["message"])

    def test_scenario_parameters_override_the_model(self) -> None:
        """``requests_per_minute`` given to the scenario beats the model's limit, in the headers too."""
        limited = limited_app(scenario="ratelimited")
        limited.scenarios.switch("ratelimited", {"requests_per_minute": 1})
        first = post(limited.app)
        self.assertEqual(limit_headers(first)["x-ratelimit-limit-requests"], "1")
        self.assertEqual(post(limited.app).status, 429)


class BucketTests(unittest.TestCase):
    """The in-memory store: all or nothing, refill, bounded."""

    def test_all_or_nothing(self) -> None:
        """Two demands are spent together, or neither is."""
        store = MemoryBuckets()
        demands = (Demand("r", 60, 1), Demand("t", 100, 80))
        self.assertEqual(store.take(demands, 0.0), (True, (59.0, 20.0)))
        spent, levels = store.take(demands, 0.0)
        self.assertFalse(spent)
        self.assertEqual(levels, (59.0, 20.0))
        self.assertEqual(store.take(demands, 36.0)[0], True)  # 36 s refills 60 tokens

    def test_bounded(self) -> None:
        """Only the most recently used buckets are kept."""
        store = MemoryBuckets(max_buckets=4)
        for key in range(10):
            store.take((Demand(f"k{key}", 10, 1),), 0.0)
        self.assertEqual(len(store), 4)

    def test_limiter_uses_the_models_limits(self) -> None:
        """A model the configuration does not name gets the fallback limits."""
        limiter = RateLimiter(ModelsConfig().limits_of)
        request = CompletionRequest("chat", "my-model", False, False, ("Hi",), {}, 5)
        standing = limiter.charge("k", request, 0.0)
        self.assertEqual((standing.requests.limit, standing.tokens.limit), (500, 200000))
        self.assertEqual(standing.tokens.remaining, 199995)


class ConfigTests(unittest.TestCase):
    """``[models.limits."ID"]`` tables set each model's limits; bad ones say where."""

    def test_table_overrides_one_key(self) -> None:
        """A table changes the keys it gives and keeps the model's other defaults."""
        config = parse_config({"models": {"limits": {"gpt-4o": {"requests_per_minute": 10}, "mine": {"context_window": 99}}}})
        self.assertEqual(config.models.limits_of("gpt-4o"), ModelLimits(10, 30000, 128000))
        self.assertEqual(config.models.limits_of("mine"), ModelLimits(500, 200000, 99))
        self.assertEqual(config.models.limits_of("gpt-4o-mini"), DEFAULT_LIMITS["gpt-4o-mini"])

    def test_bad_values(self) -> None:
        """A bad or unknown key names the table and the key."""
        with self.assertRaises(ValueError) as bad:
            parse_config({"models": {"limits": {"gpt-4o": {"requests_per_minute": 0}}}})
        self.assertEqual(
            str(bad.exception), '[models.limits."gpt-4o"] requests_per_minute: expected a whole number from 1 to 1000000000000, got 0'
        )
        with self.assertRaises(ValueError) as unknown:
            parse_config({"models": {"limits": {"gpt-4o": {"rpm": 1}}}})
        self.assertIn('[models.limits."gpt-4o"] rpm: unknown key', str(unknown.exception))

    def test_print_config_shows_them(self) -> None:
        """``--print-config`` writes a table per model."""
        from mockllm.config.describe import render

        text = render()
        self.assertIn('[models.limits."gpt-4o-mini"]\nrequests_per_minute = 500\ntokens_per_minute = 200000\ncontext_window = 128000', text)
        self.assertIn("api_keys = []", text)


class SDKTests(unittest.TestCase):
    """The official SDK reads the headers over a real socket."""

    timeout = 30

    def serve(self, config: Config, scenario: str = "default") -> openai.OpenAI:
        """A server on a loopback port and an SDK client for it (no retries)."""
        scenarios = ScenarioRunner(define(discover().scenarios), reactor, scenario, 0, config.responses)
        base = listen(self, MockLLM(config, reactor, scenarios=scenarios))
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", timeout=10, max_retries=0)
        self.addCleanup(client.close)
        return client

    async def test_headers_count_down(self) -> None:
        """``with_raw_response`` shows remaining requests going down by one per request."""
        # 60 requests a minute refill one a second, so a loaded machine's gap between the two
        # requests cannot round a whole request back
        client = self.serve(with_limits(gpt_4o_mini=ModelLimits(60, 200000, 128000)))

        def twice():
            return [
                client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=CHAT_BODY["messages"], max_tokens=20000
                )
                for _ in range(2)
            ]

        first, second = await deferToThread(twice)
        validate("CreateChatCompletionResponse", json.loads(first.text))
        self.assertEqual(first.headers["x-ratelimit-limit-requests"], "60")
        self.assertEqual(first.headers["x-ratelimit-remaining-requests"], "59")
        self.assertEqual(first.headers["x-ratelimit-remaining-tokens"], str(200000 - PROMPT_TOKENS - 20000))
        # the second is a little later: the buckets have refilled meanwhile, by a fraction of a request
        # and, in under a second, by less than a second's tokens (200,000 a minute: 3,334 a second)
        self.assertEqual(second.headers["x-ratelimit-remaining-requests"], "58")
        spent = int(first.headers["x-ratelimit-remaining-tokens"]) - int(second.headers["x-ratelimit-remaining-tokens"])
        self.assertGreater(spent, PROMPT_TOKENS + 20000 - 3334)
        self.assertLessEqual(spent, PROMPT_TOKENS + 20000)

    async def test_ratelimited_429(self) -> None:
        """Under ``ratelimited`` the SDK raises RateLimitError carrying the real wait."""
        client = self.serve(with_limits(gpt_4o_mini=ModelLimits(1, 200000, 128000)), "ratelimited")

        def two():
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT_BODY["messages"])
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT_BODY["messages"])

        with self.assertRaises(openai.RateLimitError) as caught:
            await deferToThread(two)
        self.assertEqual(caught.exception.code, "rate_limit_exceeded")
        headers = caught.exception.response.headers
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "0")
        self.assertGreater(int(headers["retry-after-ms"]), 59000)
