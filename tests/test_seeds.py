"""
``--seed``: a seeded server answers each client key's sequence of requests the
same way, whatever other keys do in between, and ``reset`` starts it again; the
splitting of reply text into tokens that the replies rely on.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial import unittest

from mockllm.behaviour import content
from mockllm.scenario import ScenarioRunner, define, discover
from tests.support import CHAT_BODY, RawHTTP, make_app

PATH = "/v1/chat/completions"


class PerKeySeedTests(unittest.TestCase):
    """Reply text comes from the key's own seeded sequence."""

    def replies(self, keys: list[str], runner: ScenarioRunner | None = None) -> tuple[list[str], ScenarioRunner]:
        """The reply text for one request per entry of ``keys``, on a seeded server."""
        clock = runner.clock if runner else Clock()
        runner = runner or ScenarioRunner(define(discover().scenarios), clock, seed=7)
        app, _ = make_app(scenarios=runner)
        texts = []
        for key in keys:
            conn = RawHTTP(app).send("POST", PATH, CHAT_BODY, {"X-Mock-Key": key})
            texts.append(conn.json()["choices"][0]["message"]["content"])
        return texts, runner

    def test_other_keys_do_not_shift_a_key(self) -> None:
        """k1's replies are the same whether or not k2 asked in between."""
        alone, _ = self.replies(["k1", "k1", "k1"])
        mixed, _ = self.replies(["k2", "k1", "k2", "k1", "k2", "k1"])
        self.assertEqual(mixed[1::2], alone)
        self.assertGreater(len(set(alone + mixed[0::2])), 1)

    def test_reset_restarts(self) -> None:
        """After ``reset`` a key's replies start over."""
        first, runner = self.replies(["k1", "k1"])
        runner.reset()
        again, _ = self.replies(["k1", "k1"], runner)
        self.assertEqual(first, again)


class LargePromptTests(unittest.TestCase):
    """Huge prompts are counted without holding the reactor."""

    def test_estimate_past_the_exact_part(self) -> None:
        """Past 64 KiB, tokens are estimated at 4 characters each; below, counted exactly."""
        small = "hello world " * 100
        self.assertEqual(content.count_tokens(small), len(content.tokenize(small)))
        big = "x" * (content.EXACT_CHARS + 4000)
        self.assertEqual(content.count_tokens(big), content.count_tokens(big[: content.EXACT_CHARS]) + 1000)


class ReplyPiecesTests(unittest.TestCase):
    """The remembered split of reply texts is the split itself."""

    def test_same_as_tokenize(self) -> None:
        """For drawn replies (and asked twice), the pieces are tokenize's, and they make the text again."""
        rng = random.Random(4)
        for _ in range(200):
            text = content.draw_reply(rng, "tell me about the weather in Paris")
            for _ in range(2):
                pieces = content.reply_pieces(text)
                self.assertEqual(pieces, tuple(content.tokenize(text)))
                self.assertEqual("".join(pieces), text)

    def test_bounded(self) -> None:
        """It keeps at most a few hundred texts, however many it is asked about."""
        for n in range(1000):
            content.reply_pieces(f"reply number {n}.")
        self.assertLessEqual(content.reply_pieces.cache_info().currsize, 256)
