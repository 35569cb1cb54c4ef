"""
The verdict's assertion helpers: each passes when its promise holds, and otherwise fails with a
message listing the offending requests attempt by attempt (the one docs/testing.md shows included).
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from mockllm.testing import (
    assert_honoured_retry_after,
    assert_no_duplicate_content,
    assert_retried,
    assert_succeeded,
    assert_within_budget,
)
from tests.support import CHAT_BODY
from tests.test_testing_verdict import Harness

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


class AssertionTests(unittest.TestCase):
    """Pass when true; fail readably when not; never pass on an empty journal."""

    def test_retried(self) -> None:
        """times counts each logical request's retries; None means at least once."""
        h = Harness(self)
        h.send(query="?fail=500", retry_count=0)
        h.send(retry_count=1)
        assert_retried(h.server, times=1)
        assert_retried(h.server)
        with self.assertRaises(AssertionError) as caught:
            assert_retried(h.server, times=2)
        message = str(caught.exception)
        self.assertIn("expected every request to be retried exactly 2 times", message)
        self.assertIn("POST /v1/chat/completions (key '127.0.0.1'): 2 attempts", message)
        self.assertIn("  1. 500 completed", message)

    def test_not_retried_fails_at_least_once(self) -> None:
        """A request that was never retried fails assert_retried() and passes times=0."""
        h = Harness(self)
        h.send()
        assert_retried(h.server, times=0)
        with self.assertRaises(AssertionError):
            assert_retried(h.server)

    def test_honoured_message_is_the_documented_one(self) -> None:
        """A retry at once after a 429 asking for 1000 ms fails with the message docs/testing.md shows."""
        h = Harness(self)
        h.send(query="?fail=429")
        h.send()
        with self.assertRaises(AssertionError) as caught:
            assert_honoured_retry_after(h.server)
        self.assertIn("```\n" + str(caught.exception) + "\n```", DOC.read_text())

    def test_honoured_needs_an_advertised_wait(self) -> None:
        """With no retry after an advertised wait there is nothing to judge: that fails too."""
        h = Harness(self)
        h.send(query="?fail=500")
        h.send()
        with self.assertRaises(AssertionError) as caught:
            assert_honoured_retry_after(h.server)
        self.assertIn("no request was retried after an answer that advertised a wait", str(caught.exception))

    def test_honoured_passes(self) -> None:
        """A retry after the whole advertised wait passes."""
        h = Harness(self)
        h.send(query="?fail=429&retry_after=300")
        h.wait(0.3)
        h.send()
        assert_honoured_retry_after(h.server)

    def test_duplicate_content(self) -> None:
        """A stream retried after content fails, marking the attempt that sent it."""
        h = Harness(self)
        body = {**CHAT_BODY, "stream": True}
        h.send(body, "?fail_chunk=1")
        h.send(body)
        assert_no_duplicate_content(h.server)
        h.server.reset()
        h.send(body, "?fail_chunk=3")
        h.send(body)
        with self.assertRaises(AssertionError) as caught:
            assert_no_duplicate_content(h.server)
        message = str(caught.exception)
        self.assertIn("the user would see it twice", message)
        self.assertIn("1. 200 cut-by-fault [content sent]", message)

    def test_budget_and_success(self) -> None:
        """Four failing attempts: over the default budget, within 4, and not a success."""
        h = Harness(self)
        for count in range(4):
            h.send(query="?fail=503", retry_count=count)
        with self.assertRaises(AssertionError) as caught:
            assert_within_budget(h.server)
        self.assertIn("at most 3 attempts", str(caught.exception))
        assert_within_budget(h.server, attempt_budget=4)
        with self.assertRaises(AssertionError) as caught:
            assert_succeeded(h.server)
        self.assertIn("4. after 0 ms: 503 completed", str(caught.exception))

    def test_empty_journal_fails_every_assertion(self) -> None:
        """No request at all: every helper fails, saying so."""
        h = Harness(self)
        for check in (assert_retried, assert_honoured_retry_after, assert_no_duplicate_content,
                      assert_within_budget, assert_succeeded):
            with self.assertRaises(AssertionError) as caught:
                check(h.server)
            self.assertIn("the server saw no request", str(caught.exception))
