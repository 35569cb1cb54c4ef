"""
Routing through Klein and Werkzeug: unknown paths and wrong methods get
OpenAI-shaped errors (this guards against Werkzeug changes under Klein).
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.support import RawHTTP, make_app, validate


class RoutingTests(unittest.TestCase):
    """404 and 405."""

    def setUp(self) -> None:
        self.app, _ = make_app()

    def test_unknown_path_404(self) -> None:
        """An unknown URL is 404 ``Invalid URL (METHOD /path)`` with the common headers."""
        conn = RawHTTP(self.app).send("POST", "/v1/nope")
        self.assertEqual(conn.status, 404)
        error = validate("ErrorResponse", conn.json())["error"]
        self.assertEqual(error["message"], "Invalid URL (POST /v1/nope)")
        self.assertIn("x-request-id", conn.headers)
        self.assertEqual(conn.headers["content-type"], "application/json")

    def test_wrong_method_405(self) -> None:
        """GET on a POST route is 405 with ``Allow: POST``."""
        conn = RawHTTP(self.app).send("GET", "/v1/chat/completions")
        self.assertEqual(conn.status, 405)
        self.assertEqual(conn.headers["allow"], "POST")
        validate("ErrorResponse", conn.json())

    def test_post_to_models_405(self) -> None:
        """POST on a GET route is 405 too."""
        conn = RawHTTP(self.app).send("POST", "/v1/models")
        self.assertEqual(conn.status, 405)
        self.assertIn("GET", conn.headers["allow"])

    def test_model_ids_with_slashes(self) -> None:
        """Model ids are matched whole, so an id with a slash is a 404 model, not a 404 URL."""
        conn = RawHTTP(self.app).send("GET", "/v1/models/org/thing")
        self.assertEqual(conn.status, 404)
        self.assertEqual(conn.json()["error"]["code"], "model_not_found")


class OwnRoutesTests(unittest.TestCase):
    """mockllm's own routes (admin API, metrics) look like the rest of the server."""

    def setUp(self) -> None:
        from tests.observe_support import observed_app

        self.app = observed_app().app

    def test_common_headers(self) -> None:
        """Admin and metrics responses carry x-request-id, openai-version and openai-processing-ms."""
        for path in ("/__admin/requests", "/metrics"):
            conn = RawHTTP(self.app).send("GET", path)
            self.assertEqual(conn.status, 200, path)
            for name in ("x-request-id", "openai-version", "openai-processing-ms"):
                self.assertIn(name, conn.headers, path)

    def test_admin_without_slash(self) -> None:
        """``/__admin`` is an OpenAI-shaped 404, not Werkzeug's HTML redirect."""
        conn = RawHTTP(self.app).send("GET", "/__admin")
        self.assertEqual(conn.status, 404)
        validate("ErrorResponse", conn.json())
