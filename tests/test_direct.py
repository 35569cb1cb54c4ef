"""
The completion routes answered without Klein's routing (:mod:`mockllm.http.direct`): the same
answers as through Klein, a client that leaves still cancels what was pending, a bug is still
an OpenAI-shaped 500, and every other method or path is still Klein's.
"""

from __future__ import annotations

from twisted.trial import unittest

from mockllm.http.direct import Direct
from tests.support import Finished, RawHTTP, make_app, validate

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


class DirectRoutesTests(unittest.TestCase):
    """Which requests :class:`Direct` answers, and how it ends them."""

    def test_table_is_the_fixed_post_routes(self) -> None:
        """Every POST-only route of a fixed path is direct; routes with arguments or other methods are not."""
        app, _ = make_app()
        self.assertEqual(
            sorted(path for _, path in app.direct_routes()),
            [b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings", b"/v1/responses"],
        )
        self.assertEqual({method for method, _ in app.direct_routes()}, {b"POST"})

    def test_whole_answer(self) -> None:
        """A direct chat completion is a complete, schema-valid 200 on a connection that stays open."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", "/v1/chat/completions", CHAT)
        self.assertEqual(conn.status, 200)
        self.assertTrue(conn.complete)
        validate("CreateChatCompletionResponse", conn.json())
        self.assertTrue(conn.transport.connected)

    def test_trailing_slash_is_klein(self) -> None:
        """A path that is not exactly a route's goes to Klein, which answers as it always did (not a 200)."""
        app, _ = make_app()
        conn = RawHTTP(app).send("POST", "/v1/chat/completions/", CHAT)
        self.assertNotEqual(conn.status, 200)

    def test_delayed_answer_and_leaving_client(self) -> None:
        """A delayed answer arrives on the clock; a client that leaves first cancels its timer and is never finished."""
        seen = Finished()
        app, clock = make_app(observers=[seen])
        conn = RawHTTP(app).send("POST", "/v1/chat/completions?delay=500", CHAT)
        self.assertIsNone(conn.status)
        clock.advance(0.5)
        self.assertEqual(conn.status, 200)
        self.assertTrue(conn.complete)
        gone = RawHTTP(app).send("POST", "/v1/chat/completions?delay=500", CHAT)
        gone.disconnect()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual([ex.outcome for ex in seen], ["completed", "client-disconnected"])

    def test_routes_answer_the_same_under_klein(self) -> None:
        """Called by Klein itself (no :class:`Direct` in front), the completion routes return bytes or a
        Deferred, never ``NOT_DONE_YET``: a whole, a delayed and a streamed answer are each complete and
        finished once, as through :class:`Direct`."""
        seen = Finished()
        app, clock = make_app(observers=[seen])
        klein = app.app.resource()
        whole = RawHTTP(app, resource=klein).send("POST", "/v1/chat/completions", CHAT)
        validate("CreateChatCompletionResponse", whole.json())
        delayed = RawHTTP(app, resource=klein).send("POST", "/v1/chat/completions?delay=500", CHAT)
        streamed = RawHTTP(app, resource=klein).send("POST", "/v1/chat/completions", dict(CHAT, stream=True))
        self.assertIsNone(delayed.status)
        clock.advance(0.5)
        for _ in range(200):
            clock.advance(0.05)
        self.assertEqual([conn.status for conn in (whole, delayed, streamed)], [200, 200, 200])
        self.assertTrue(all(conn.complete for conn in (whole, delayed, streamed)))
        self.assertEqual(streamed.events()[-1], "[DONE]")
        self.assertEqual([ex.outcome for ex in seen], ["completed"] * 3)

    def test_bug_is_a_500(self) -> None:
        """A route that raises answers the app's OpenAI-shaped 500, as Klein's error handler would."""
        app, _ = make_app()
        conn = RawHTTP(app)
        conn.site.resource = Direct({(b"POST", b"/v1/chat/completions"): _raise}, conn.site.resource, app.failed)
        conn.send("POST", "/v1/chat/completions", CHAT)
        self.assertEqual(conn.status, 500)
        validate("ErrorResponse", conn.json())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


    def test_failed_deferred_is_a_500(self) -> None:
        """A pending answer that fails later is answered with the same OpenAI-shaped 500."""
        from twisted.internet.defer import Deferred

        app, _ = make_app()
        pending = Deferred()
        conn = RawHTTP(app)
        conn.site.resource = Direct({(b"POST", b"/v1/chat/completions"): lambda request: pending}, conn.site.resource, app.failed)
        conn.send("POST", "/v1/chat/completions", CHAT)
        self.assertIsNone(conn.status)
        pending.errback(ZeroDivisionError("later"))
        self.assertEqual(conn.status, 500)
        validate("ErrorResponse", conn.json())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


def _raise(request) -> bytes:
    """A route with a bug."""
    return 1 // 0
