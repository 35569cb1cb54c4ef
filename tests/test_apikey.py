"""
The optional API key check: ``--api-key`` (repeatable) and ``[server] api_keys``.  Without
keys nothing is checked; with them a missing or wrong ``Authorization: Bearer`` on a
``/v1/`` route is the real 401, while ``/health``, ``/metrics`` and ``/__admin/`` stay
open.  In memory, and with the official SDK over a real socket.
"""

from __future__ import annotations

import openai
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.behaviour.caller import caller_key, masked_key
from mockllm.config import Config, ServerConfig
from mockllm.config.toml import parse_config
from mockllm.http.routes import MockLLM
from mockllm.observe.metrics import Metrics
from tests.limits_support import limited_app, post
from tests.support import CHAT_BODY, RawHTTP, listen, validate

KEYS = Config(server=ServerConfig(api_keys=("sk-first", "sk-second")))
MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the "
    "API from your browser and are prompted for a username. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
LONG_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyz"


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header sending ``key``."""
    return {"Authorization": f"Bearer {key}"}


class CheckTests(unittest.TestCase):
    """Which requests pass, and what the others get."""

    def setUp(self) -> None:
        self.limited = limited_app(KEYS)
        self.app = self.limited.app

    def error_of(self, conn: RawHTTP) -> dict:
        """Assert a 401 and return its (schema-valid) error object."""
        self.assertEqual(conn.status, 401)
        return validate("ErrorResponse", conn.json())["error"]

    def test_missing_key(self) -> None:
        """No Authorization header: the real "You didn't provide an API key" 401, code null."""
        error = self.error_of(post(self.app))
        self.assertEqual(error, {"message": MISSING, "type": "invalid_request_error", "param": None, "code": None})

    def test_not_bearer_is_missing(self) -> None:
        """A Basic or empty Bearer header counts as no key."""
        for value in ("Basic c2stZmlyc3Q6", "Bearer ", "sk-first"):
            self.assertEqual(self.error_of(post(self.app, headers={"Authorization": value}))["message"], MISSING)

    def test_wrong_key(self) -> None:
        """A key not configured: ``invalid_api_key`` naming the key masked as OpenAI masks it."""
        error = self.error_of(post(self.app, headers=bearer(LONG_KEY)))
        self.assertEqual(error["code"], "invalid_api_key")
        self.assertIsNone(error["param"])
        self.assertEqual(
            error["message"],
            f"Incorrect API key provided: sk-proj-{'*' * (len(LONG_KEY) - 12)}wxyz. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
        )
        short = self.error_of(post(self.app, headers=bearer("sk-nope")))
        self.assertTrue(short["message"].startswith("Incorrect API key provided: sk-nope. "))

    def test_right_keys_pass(self) -> None:
        """Each configured key is accepted, the scheme in any case."""
        self.assertEqual(post(self.app, headers=bearer("sk-first")).status, 200)
        self.assertEqual(post(self.app, headers={"Authorization": "bearer sk-second"}).status, 200)

    def test_checked_before_the_body(self) -> None:
        """A request without a key gets the 401 even if its body is not JSON."""
        self.assertEqual(post(self.app, b"{not json").status, 401)

    def test_every_v1_route(self) -> None:
        """Models, one model, legacy completions and unknown models all need the key first."""
        for method, path in (("GET", "/v1/models"), ("GET", "/v1/models/gpt-4o"), ("GET", "/v1/models/nope"),
                             ("POST", "/v1/completions")):
            self.assertEqual(RawHTTP(self.app).send(method, path).status, 401, path)
        self.assertEqual(RawHTTP(self.app).send("GET", "/v1/models", headers=bearer("sk-first")).status, 200)
        self.assertEqual(RawHTTP(self.app).send("GET", "/v1/models/nope", headers=bearer("sk-first")).status, 404)

    def test_own_routes_stay_open(self) -> None:
        """``/health``, ``/metrics`` and the admin API need no key."""
        app = MockLLM(KEYS, self.limited.clock, metrics=Metrics([]), admin=None)
        self.assertEqual(RawHTTP(app).send("GET", "/health").status, 200)
        self.assertEqual(RawHTTP(app).send("GET", "/metrics").status, 200)
        self.assertEqual(RawHTTP(self.app).send("GET", "/__admin/requests").status, 200)

    def test_no_keys_no_check(self) -> None:
        """Without configured keys any request passes, with or without a key."""
        app = limited_app().app
        self.assertEqual(post(app).status, 200)
        self.assertEqual(post(app, headers=bearer("anything")).status, 200)

    def test_refusals_are_journaled_without_the_key(self) -> None:
        """A 401 is journaled as refused; the API key, as a caller key, is never whole."""
        post(self.app, headers=bearer(LONG_KEY))
        post(self.app, headers=bearer("sk-first"))
        refused, passed = RawHTTP(self.app).send("GET", "/__admin/requests").json()["data"]
        self.assertEqual(refused["status"], 401)
        self.assertIn("Incorrect API key", refused["error"])
        self.assertNotIn("sk-first", passed["key"])
        self.assertTrue(passed["key"].startswith("sk-***#"))


class CallerKeyTests(unittest.TestCase):
    """The API key is the caller key after X-Mock-Key, shown masked."""

    def test_order_and_masking(self) -> None:
        """X-Mock-Key wins; a long key is masked, a short one cut to 3 characters; each has a digest."""
        self.assertEqual(caller_key("explicit", None, "1.2.3.4", LONG_KEY), "explicit")
        long_key = caller_key(None, {"subject": "CN=x"}, "1.2.3.4", LONG_KEY)
        self.assertTrue(long_key.startswith(masked_key(LONG_KEY) + "#"))
        self.assertNotEqual(caller_key(None, None, "h", "sk-aaaa"), caller_key(None, None, "h", "sk-aaab"))
        self.assertEqual(caller_key(None, {"subject": "CN=x"}, "1.2.3.4"), "CN=x")
        self.assertEqual(caller_key(None, None, "1.2.3.4"), "1.2.3.4")


class ConfigTests(unittest.TestCase):
    """``--api-key`` and ``[server] api_keys``."""

    def test_toml(self) -> None:
        """``api_keys`` is an array of strings; empty means no check; anything else says what is wrong."""
        self.assertEqual(parse_config({"server": {"api_keys": ["a", "b"]}}).server.api_keys, ("a", "b"))
        self.assertEqual(parse_config({"server": {"api_keys": []}}).server.api_keys, ())
        with self.assertRaises(ValueError) as bad:
            parse_config({"server": {"api_keys": "sk-one"}})
        self.assertEqual(str(bad.exception), '[server] api_keys: expected an array of non-empty strings, got "sk-one"')

    def test_option_repeats_and_adds_to_the_file(self) -> None:
        """Each ``--api-key`` is added to the file's keys."""
        options = tap.Options()
        options.parseOptions(["--api-key", "sk-a", "--api-key", "sk-b"])
        self.assertEqual(tap.config_from_options(options).server.api_keys, ("sk-a", "sk-b"))
        with self.assertRaises(usage.UsageError):
            tap.Options().parseOptions(["--api-key", " "])


class BannerTests(unittest.TestCase):
    """Start-up tells whether keys are checked."""

    def test_banner_line(self) -> None:
        """The banner counts the keys (or says the check is off) and the response rules."""
        options = tap.Options()
        options.parseOptions(["--api-key", "sk-a", "--api-key", "sk-b"])
        config = tap.config_from_options(options)
        lines = tap.banner(options, config, tap.scenario_runner(options, config, reactor), tap.observe_config(options))
        self.assertIn("mockllm: API keys 2, response rules 0", lines)
        off = tap.banner(options, Config(), tap.scenario_runner(options, config, reactor), tap.observe_config(options))
        self.assertIn("mockllm: API keys off (--api-key KEY), response rules 0", off)


class SDKTests(unittest.TestCase):
    """The official SDK over a real socket."""

    timeout = 30

    def client(self, key: str) -> openai.OpenAI:
        """An SDK client with ``key`` for a keyed server (no retries)."""
        base = getattr(self, "base", None) or listen(self, MockLLM(KEYS, reactor))
        self.base = base
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, timeout=10, max_retries=0)
        self.addCleanup(client.close)
        return client

    async def test_wrong_key_raises_authentication_error(self) -> None:
        """A wrong key: AuthenticationError with code ``invalid_api_key``; the right one answers."""
        with self.assertRaises(openai.AuthenticationError) as caught:
            await deferToThread(self.client("sk-wrong").chat.completions.create,
                                model="gpt-4o-mini", messages=CHAT_BODY["messages"])
        self.assertEqual(caught.exception.status_code, 401)
        self.assertEqual(caught.exception.code, "invalid_api_key")
        completion = await deferToThread(self.client("sk-second").chat.completions.create,
                                         model="gpt-4o-mini", messages=CHAT_BODY["messages"])
        self.assertEqual(completion.choices[0].finish_reason, "stop")
