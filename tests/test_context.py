"""
Context windows: a prompt that does not fit the model's window (alone, or with the completion
it asks for) is the real 400 ``context_length_exceeded``; prompts are counted in bounded time
however large.  In memory, and with the official SDK over a real socket.
"""

from __future__ import annotations

import time
from dataclasses import replace

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mockllm.config import Config, ModelsConfig
from mockllm.config.model import DEFAULT_LIMITS, ModelLimits
from mockllm.http.routes import MockLLM
from tests.limits_support import limit_headers, limited_app, post
from tests.support import CHAT_BODY, listen, validate

def words(n: int) -> dict:
    """A chat body whose prompt is ``n`` words: ``n + 6`` prompt tokens (3 for the message, 3 for priming)."""
    return dict(CHAT_BODY, messages=[{"role": "user", "content": " ".join(["word"] * n)}])


def windowed(window: int, model: str = "gpt-4o-mini") -> Config:
    """The default configuration with ``model``'s context window set to ``window``."""
    limits = {**DEFAULT_LIMITS, model: replace(DEFAULT_LIMITS.get(model, ModelLimits()), context_window=window)}
    return Config(models=replace(ModelsConfig(), limits=limits))


class ContextTests(unittest.TestCase):
    """The window check and its messages."""

    def refused(self, conn) -> dict:
        """Assert the 400 ``context_length_exceeded`` and return its error object."""
        self.assertEqual(conn.status, 400)
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertEqual((error["type"], error["code"]), ("invalid_request_error", "context_length_exceeded"))
        return error

    def test_prompt_over_the_window(self) -> None:
        """A prompt alone over the window: "your messages resulted in M tokens"."""
        app = limited_app(windowed(100)).app
        error = self.refused(post(app, words(95)))
        self.assertEqual(error["param"], "messages")
        self.assertEqual(
            error["message"],
            "This model's maximum context length is 100 tokens. However, your messages resulted in 101 tokens. "
            "Please reduce the length of the messages.",
        )

    def test_prompt_and_completion_over_the_window(self) -> None:
        """A prompt that fits but not with max_tokens: the variant naming both counts."""
        app = limited_app(windowed(100)).app
        error = self.refused(post(app, dict(words(50), max_tokens=60)))
        self.assertEqual(
            error["message"],
            "This model's maximum context length is 100 tokens. However, you requested 116 tokens "
            "(56 in the messages, 60 in the completion). Please reduce the length of the messages or completion.",
        )
        self.refused(post(app, dict(words(50), max_completion_tokens=60)))

    def test_exactly_full_fits(self) -> None:
        """Prompt plus max_tokens equal to the window is answered."""
        app = limited_app(windowed(100)).app
        self.assertEqual(post(app, dict(words(50), max_tokens=44)).status, 200)
        self.assertEqual(post(app, words(94)).status, 200)

    def test_refusal_is_not_charged(self) -> None:
        """A refused prompt costs nothing and carries no rate-limit headers."""
        app = limited_app(windowed(100)).app
        self.assertEqual(limit_headers(post(app, words(200))), {})
        self.assertEqual(limit_headers(post(app))["x-ratelimit-remaining-requests"], "499")

    def test_legacy_prompt_wording(self) -> None:
        """Legacy completions name the prompt, in that API's own wording."""
        app = limited_app(windowed(50, "gpt-3.5-turbo")).app
        conn = post(app, {"model": "gpt-3.5-turbo", "prompt": " ".join(["word"] * 40), "max_tokens": 16}, path="/v1/completions")
        error = self.refused(conn)
        self.assertEqual(error["param"], "prompt")
        self.assertTrue(error["message"].startswith("This model's maximum context length is 50 tokens, however you requested"))
        self.assertIn("16 for the completion). Please reduce your prompt; or completion length.", error["message"])

    def test_wording_per_api(self) -> None:
        """Embeddings use the legacy wording naming ``input``; the Responses API its own message."""
        from mockllm.dialects.openai import context_length_exceeded

        embeddings = context_length_exceeded(8192, 9000, 0, "embeddings")
        self.assertEqual((embeddings.param, embeddings.code), ("input", "context_length_exceeded"))
        self.assertIn("however you requested 9000 tokens (9000 in your prompt; 0 for the completion)", embeddings.message)
        responses = context_length_exceeded(128000, 200000, 0, "responses")
        self.assertEqual(responses.param, "input")
        self.assertEqual(responses.message, "Your input exceeds the context window of this model. Please adjust your input and try again.")

    def test_default_windows(self) -> None:
        """The defaults are the real models' windows."""
        limits = ModelsConfig().limits_of
        self.assertEqual(limits("gpt-4o-mini").context_window, 128000)
        self.assertEqual(limits("gpt-4o").context_window, 128000)
        self.assertEqual(limits("gpt-4.1").context_window, 1047576)
        self.assertEqual(limits("gpt-3.5-turbo").context_window, 16385)
        self.assertEqual(limits("o3-mini").context_window, 200000)

    def test_huge_prompt_answers_quickly(self) -> None:
        """A 700k-character prompt is refused for gpt-4o-mini, and answered by gpt-4.1, each within a second."""
        huge = "lorem ipsum, dolor sit amet " * 25_000
        self.assertGreaterEqual(len(huge), 700_000)
        config = Config(models=replace(ModelsConfig(), available=("gpt-4o-mini", "gpt-4.1")))
        app = limited_app(config).app
        for model, status in (("gpt-4o-mini", 400), ("gpt-4.1", 200)):
            started = time.monotonic()
            conn = post(app, {"model": model, "messages": [{"role": "user", "content": huge}]})
            self.assertLess(time.monotonic() - started, 1.0)
            self.assertEqual(conn.status, status)


class SDKTests(unittest.TestCase):
    """The official SDK raises BadRequestError with the code."""

    timeout = 30

    async def test_bad_request_error(self) -> None:
        """``BadRequestError.code`` is ``context_length_exceeded`` and ``param`` is ``messages``."""
        base = listen(self, MockLLM(windowed(100), reactor))
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", timeout=10, max_retries=0)
        self.addCleanup(client.close)
        with self.assertRaises(openai.BadRequestError) as caught:
            await deferToThread(client.chat.completions.create, model="gpt-4o-mini", messages=words(200)["messages"])
        self.assertEqual(caught.exception.code, "context_length_exceeded")
        self.assertEqual(caught.exception.param, "messages")
        self.assertIn("maximum context length is 100 tokens", caught.exception.message)
