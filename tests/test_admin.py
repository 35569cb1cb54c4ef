"""
The admin API under ``/__admin/``: who may use it, the journal routes, and
switching and resetting the scenario at runtime, in memory on a ``task.Clock``
(non-loopback peers come from ``RawHTTP``'s fake transport address).
"""

from __future__ import annotations

import json

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial import unittest
from zope.interface import alsoProvides

from mockllm.admin.access import LOOPBACK, AdminAccess, parse_networks
from mockllm.scenario import ScenarioRunner, define, discover
from mockllm.tap import Options
from tests.observe_support import PATH, observed_app
from tests.support import CHAT_BODY, RawHTTP, validate


class AdminCase(unittest.TestCase):
    """Base: an observed app and helpers to call it."""

    access: AdminAccess | None = None

    def setUp(self) -> None:
        self.certificate: dict | None = None
        self.o = observed_app(access=self.access, identify=lambda request: self.certificate)

    def call(self, method: str, path: str, body: object = None, peer: str = "127.0.0.1", secure: bool = False) -> RawHTTP:
        """One request from ``peer`` (over a TLS-looking transport if ``secure``; its client
        certificate is whatever :attr:`certificate` says)."""
        conn = RawHTTP(self.o.app, peer=peer)
        if secure:
            alsoProvides(conn.transport, ISSLTransport)
        self.addCleanup(conn.disconnect)
        return conn.send(method, path, body)

    def refused(self, conn: RawHTTP) -> None:
        """Assert an OpenAI-shaped 403 ``admin_forbidden``."""
        self.assertEqual(conn.status, 403)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["code"], "admin_forbidden")


class AccessTests(AdminCase):
    """Loopback only over plain HTTP, unless ``--admin-from``; HTTPS passes."""

    def test_loopback_allowed(self) -> None:
        """IPv4 loopback may use the admin API."""
        self.assertEqual(self.call("GET", "/__admin/requests").status, 200)

    def test_remote_refused_everywhere(self) -> None:
        """A non-loopback peer gets a 403 on every admin URL, known or not, and nothing is journaled."""
        for method, path in [("GET", "/__admin/requests"), ("PUT", "/__admin/scenario"), ("GET", "/__admin/nope")]:
            self.refused(self.call(method, path, {"name": "broken"}, peer="10.1.2.3"))
        self.assertEqual(self.o.scenarios.name, "calm")
        self.assertEqual(len(self.o.journal), 0)

    def test_https_allowed_from_anywhere(self) -> None:
        """Over HTTPS with a client certificate the handshake verified, any address may proceed."""
        self.certificate = {"subject": "CN=gateway"}
        self.assertEqual(self.call("GET", "/__admin/requests", peer="10.1.2.3", secure=True).status, 200)

    def test_https_without_certificate_is_like_plain_http(self) -> None:
        """Under ``--client-cert optional`` a client without a certificate gets the loopback rule."""
        self.refused(self.call("POST", "/__admin/reset", peer="10.1.2.3", secure=True))
        self.assertEqual(self.call("GET", "/__admin/requests", peer="127.0.0.1", secure=True).status, 200)
        self.assertEqual(self.o.scenarios.resets, 0)

    def test_access_rules(self) -> None:
        """IPv6 loopback and IPv4-mapped loopback are loopback; other hosts and non-IPs are not."""
        access = AdminAccess()
        self.assertEqual(access.networks, LOOPBACK)
        for host in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
            self.assertTrue(access.allows(host), host)
        for host in ("10.0.0.1", "::ffff:10.0.0.1", "fe80::1", "?", None):
            self.assertFalse(access.allows(host), host)

    def test_parse_networks(self) -> None:
        """``--admin-from`` takes CIDRs and bare addresses, and names a bad entry."""
        self.assertEqual([str(n) for n in parse_networks("10.0.0.0/8, 192.168.1.7,fd00::/8")],
                         ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"])
        for bad in ("10.0.0.0/33", "nonsense", " , "):
            self.assertRaises(ValueError, parse_networks, bad)

    def test_options(self) -> None:
        """The command line parses ``--admin-from``, ``--no-admin`` and ``--journal-size``, refusing bad values."""
        options = Options()
        options.parseOptions(["--admin-from", "10.0.0.0/8", "--journal-size", "5", "--no-admin"])
        self.assertEqual([str(n) for n in options["admin-from"]], ["10.0.0.0/8"])
        self.assertEqual((options["journal-size"], options["no-admin"]), (5, True))
        for bad in (["--admin-from", "x"], ["--journal-size", "-1"], ["--request-log-keep", "x"]):
            self.assertRaises(usage.UsageError, Options().parseOptions, bad)


class TLSRouteTests(AdminCase):
    """``/__admin/whoami`` and ``/__admin/reload-tls`` are admin routes like the others."""

    def test_whoami(self) -> None:
        """Over plain HTTP from loopback whoami answers with every field null; from elsewhere, 403."""
        conn = self.call("GET", "/__admin/whoami")
        self.assertEqual(conn.status, 200)
        self.assertEqual(set(conn.json().values()), {None})
        self.refused(self.call("GET", "/__admin/whoami", peer="10.1.2.3"))

    def test_reload_tls_without_https(self) -> None:
        """Without an HTTPS listener reload-tls is a 404 saying so; from elsewhere, 403."""
        conn = self.call("POST", "/__admin/reload-tls")
        body = validate("ErrorResponse", conn.json())
        self.assertEqual(body["error"]["code"], "no_https_listener")
        self.assertEqual(body["error"]["message"], "This server has no HTTPS listener.")
        self.assertFalse(body["reloaded"])
        self.assertEqual(conn.status, 404)
        self.refused(self.call("POST", "/__admin/reload-tls", peer="10.1.2.3"))


class AdminFromTests(AdminCase):
    """``--admin-from 10.0.0.0/8`` adds that network to loopback."""

    access = AdminAccess(parse_networks("10.0.0.0/8"))

    def test_listed_network_allowed(self) -> None:
        """A peer in the network may proceed; loopback still may; others may not."""
        self.assertEqual(self.call("GET", "/__admin/requests", peer="10.200.0.1").status, 200)
        self.assertEqual(self.call("GET", "/__admin/requests").status, 200)
        self.refused(self.call("GET", "/__admin/requests", peer="192.168.0.1"))


class NoAdminTests(unittest.TestCase):
    """``--no-admin``."""

    def test_admin_urls_are_unknown(self) -> None:
        """Without the admin API its URLs are 404 ``Invalid URL``, journaled like any unknown URL."""
        o = observed_app(admin=False)
        conn = RawHTTP(o.app).send("GET", "/__admin/requests")
        self.assertEqual(conn.status, 404)
        self.assertEqual(conn.json()["error"]["message"], "Invalid URL (GET /__admin/requests)")
        self.assertEqual(len(o.journal), 1)


class JournalRouteTests(AdminCase):
    """``GET`` and ``DELETE /__admin/requests``."""

    def setUp(self) -> None:
        super().setUp()
        self.call("POST", PATH, CHAT_BODY)
        self.call("POST", PATH + "?fail=429", CHAT_BODY)
        self.call("POST", PATH + "?fail=503", CHAT_BODY)
        self.call("GET", "/v1/models")

    def test_list_and_filter(self) -> None:
        """The list is oldest first; filters narrow it; admin calls themselves are not in it."""
        body = self.call("GET", "/__admin/requests").json()
        self.assertEqual(body["object"], "list")
        self.assertEqual([r["status"] for r in body["data"]], [200, 429, 503, 200])
        self.assertEqual((body["count"], body["capacity"]), (4, 100))
        page = self.call("GET", f"/__admin/requests?path={PATH}&status=5xx").json()
        self.assertEqual([r["query"] for r in page["data"]], ["fail=503"])
        page = self.call("GET", "/__admin/requests?limit=2").json()
        self.assertEqual([r["path"] for r in page["data"]], [PATH, "/v1/models"])

    def test_bad_filter(self) -> None:
        """A malformed filter is an OpenAI-shaped 400."""
        conn = self.call("GET", "/__admin/requests?since=later")
        self.assertEqual(conn.status, 400)
        self.assertEqual(validate("ErrorResponse", conn.json())["error"]["param"], "since")

    def test_odd_numbers_in_filters(self) -> None:
        """A superscript digit, 5000 nines or ``nan`` is an OpenAI-shaped 400 too, not a 500."""
        for query, param in [("limit=%C2%B2", "limit"), ("status=%C2%B2", "status"),
                             ("limit=" + "9" * 5000, "limit"), ("since=nan", "since"), ("since=inf", "since")]:
            conn = self.call("GET", f"/__admin/requests?{query}")
            self.assertEqual(conn.status, 400, query[:20])
            self.assertEqual(validate("ErrorResponse", conn.json())["error"]["param"], param)

    def test_delete(self) -> None:
        """``DELETE`` empties the journal and says how many records went."""
        self.assertEqual(self.call("DELETE", "/__admin/requests").json(), {"deleted": 4})
        self.assertEqual(self.call("GET", "/__admin/requests").json()["data"], [])

    def test_wrong_method_and_unknown_path(self) -> None:
        """Admin URLs answer 405 (with ``Allow``) and 404 in the OpenAI shape too."""
        conn = self.call("POST", "/__admin/requests")
        self.assertEqual(conn.status, 405)
        self.assertIn("DELETE", conn.headers["allow"])
        validate("ErrorResponse", conn.json())
        conn = self.call("GET", "/__admin/nothing")
        self.assertEqual(conn.status, 404)
        self.assertEqual(conn.json()["error"]["message"], "Invalid URL (GET /__admin/nothing)")


class ScenarioRouteTests(AdminCase):
    """``GET``/``PUT /__admin/scenario`` and ``POST /__admin/reset``."""

    def test_switch_changes_the_next_request(self) -> None:
        """After ``PUT {"name": "broken"}`` the next completion fails; switching back heals it."""
        self.assertEqual(self.call("POST", PATH, CHAT_BODY).status, 200)
        conn = self.call("PUT", "/__admin/scenario", {"name": "broken"})
        self.assertEqual(conn.json()["name"], "broken")
        self.assertEqual(self.call("GET", "/__admin/scenario").json()["name"], "broken")
        self.assertEqual(self.call("POST", PATH, CHAT_BODY).status, 503)
        self.call("PUT", "/__admin/scenario", {"name": "calm"})
        self.assertEqual(self.call("POST", PATH, CHAT_BODY).status, 200)

    def test_params_only_changes_the_current_scenario(self) -> None:
        """``PUT {"params": ...}`` keeps the current scenario and changes its parameters."""
        self.call("PUT", "/__admin/scenario", {"name": "broken"})
        conn = self.call("PUT", "/__admin/scenario", {"params": {"status": 502}})
        self.assertEqual(conn.json()["parameters"], {"status": 502})
        self.assertEqual(self.call("POST", PATH, CHAT_BODY).status, 502)

    def test_bad_switches_are_400s(self) -> None:
        """Unknown names, bad parameters and malformed bodies are 400s that say why; nothing changes."""
        cases = [
            ({"name": "nope"}, "unknown scenario 'nope'; known scenarios: broken, calm"),
            ({"name": "broken", "params": {"status": "x"}}, "scenario 'broken': 'status' must be an integer"),
            ({}, "Give the scenario's 'name', its 'params', or both."),
            ({"scenario": "broken"}, "Unrecognized request argument supplied: scenario"),
            ({"name": 3}, "Invalid 'name': expected a string."),
            ({"params": []}, "Invalid 'params': expected an object."),
        ]
        for body, message in cases:
            conn = self.call("PUT", "/__admin/scenario", body)
            self.assertEqual(conn.status, 400, body)
            self.assertEqual(validate("ErrorResponse", conn.json())["error"]["message"], message)
        bad_params = self.call("PUT", "/__admin/scenario", {"name": "broken", "params": {"status": "x"}})
        self.assertEqual(bad_params.json()["error"]["param"], "params")
        self.assertEqual(self.call("PUT", "/__admin/scenario", b"{").status, 400)
        self.assertEqual(self.o.scenarios.name, "calm")

    def test_reset(self) -> None:
        """``POST /__admin/reset`` resets scenario state and empties the journal."""
        self.call("POST", PATH, CHAT_BODY)
        body = self.call("POST", "/__admin/reset").json()
        self.assertEqual((body["journal_cleared"], body["scenario"]["name"]), (1, "calm"))
        self.assertEqual((self.o.scenarios.resets, len(self.o.journal)), (1, 0))

    def test_without_switchable_scenarios(self) -> None:
        """With a chooser that cannot be switched, the scenario routes say so; reset still empties the journal."""
        o = observed_app(scenarios=_Unswitchable())
        conn = RawHTTP(o.app).send("GET", "/__admin/scenario")
        self.assertEqual((conn.status, conn.json()["error"]["code"]), (404, "no_scenarios"))
        self.assertEqual(json.loads(RawHTTP(o.app).send("POST", "/__admin/reset").body)["scenario"], None)


class _Unswitchable:
    """A chooser without the control interface."""

    def plan(self, request: object, caller: object) -> tuple:
        """No opinion."""
        from mockllm.behaviour.plan import PlanPart

        return "default", PlanPart()


class RealScenarioTests(unittest.TestCase):
    """The admin API driving the real :class:`~mockllm.scenario.ScenarioRunner` and its ``flaky`` scenario."""

    def setUp(self) -> None:
        runner = ScenarioRunner(define(discover().scenarios), Clock(), seed=0)
        self.o = observed_app(scenarios=runner)

    def call(self, method: str, path: str, body: object = None, key: str = "gw") -> RawHTTP:
        """One request with ``X-Mock-Key: key``."""
        return RawHTTP(self.o.app).send(method, path, body, {"X-Mock-Key": key})

    def statuses(self, count: int) -> list[int | None]:
        """The statuses of ``count`` completions in a row."""
        return [self.call("POST", PATH, CHAT_BODY).status for _ in range(count)]

    def test_switch_then_reset(self) -> None:
        """Switching to ``flaky`` fails the next N requests; reset starts the count again."""
        self.assertEqual(self.statuses(1), [200])
        conn = self.call("PUT", "/__admin/scenario", {"name": "flaky", "params": {"fail_first": 2}})
        self.assertEqual((conn.status, conn.json()["name"]), (200, "flaky"))
        self.assertEqual(conn.json()["parameters"]["fail_first"], 2)
        self.assertEqual(self.statuses(3), [503, 503, 200])
        self.assertEqual(self.call("POST", "/__admin/reset").status, 200)
        self.assertEqual(self.statuses(1), [503])
        self.assertEqual([(r["scenario"], r["status"]) for r in self.o.journal.query()], [("flaky", 503)])

    def test_huge_delay_refused(self) -> None:
        """A delay of 400 digits or 10**15 ms is a 400 naming the parameter; completions still work."""
        for value in [int("9" * 400), 10**15, 3_600_001]:
            conn = self.call("PUT", "/__admin/scenario", {"params": {"default_delay_ms": value}})
            self.assertEqual(conn.status, 400)
            self.assertIn("default_delay_ms", validate("ErrorResponse", conn.json())["error"]["message"])
        for name, param in [("realistic", "first_token_ms"), ("chaos", "max_delay_ms"), ("chaos", "timeout_ms")]:
            conn = self.call("PUT", "/__admin/scenario", {"name": name, "params": {param: 10**15}})
            self.assertEqual(conn.status, 400)
            self.assertIn(param, conn.json()["error"]["message"])
        conn = self.call("PUT", "/__admin/scenario", {"params": {"default_delay_ms": 3_600_000}})
        self.assertEqual((conn.status, conn.json()["parameters"]["default_delay_ms"]), (200, 3_600_000))
        self.call("PUT", "/__admin/scenario", {"params": {"default_delay_ms": None}})
        self.assertEqual(self.statuses(1), [200])

    def test_unknown_scenario(self) -> None:
        """An unknown name is a 400 listing the known scenarios; the current one stays."""
        conn = self.call("PUT", "/__admin/scenario", {"name": "nope"})
        self.assertEqual(conn.status, 400)
        self.assertIn("flaky", conn.json()["error"]["message"])
        self.assertEqual(self.call("GET", "/__admin/scenario").json()["name"], "default")
