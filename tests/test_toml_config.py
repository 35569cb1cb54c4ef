"""
``--config FILE``: the TOML loader, every way a file can be wrong, the shipped
examples, and command-line options overriding the file.
"""

from __future__ import annotations

import os
from importlib import resources

from twisted.python import usage
from twisted.trial import unittest

from mockllm import tap
from mockllm.config import Config
from mockllm.scenario import define, discover
from mockllm.config import TLS_FAULTS
from mockllm.config.toml import ConfigError, load_config, parse_config
from tests.support import CHAT_BODY, RawHTTP
from tests.test_scenarios import scenario_app

EXAMPLES = resources.files("mockllm") / "examples"


class ConfigCase(unittest.TestCase):
    """Base: write TOML text into a temporary file."""

    def write(self, text: str) -> str:
        """A file holding ``text``; its path."""
        path = self.mktemp() + ".toml"
        with open(path, "w") as f:
            f.write(text)
        return path

    def problem(self, text: str) -> str:
        """The :class:`ConfigError` message for a file holding ``text`` (fails if it loads)."""
        path = self.write(text)
        with self.assertRaises(ConfigError) as raised:
            load_config(path)
        message = str(raised.exception)
        self.assertTrue(message.startswith(path + ": "), message)
        return message

    def usage_problem(self, text: str, *argv: str) -> str:
        """The UsageError message ``twist mockllm --config FILE`` gives for ``text``."""
        path = self.write(text)
        with self.assertRaises(usage.UsageError) as raised:
            tap.Options().parseOptions(["--config", path, *argv])
        message = str(raised.exception)
        self.assertIn(path, message)
        return message


class ExampleTests(ConfigCase):
    """The plan document's examples ship with the package and load."""

    def test_default_toml(self) -> None:
        """default.toml loads with the document's values."""
        config = load_config(str(EXAMPLES / "default.toml"))
        self.assertEqual((config.server.host, config.server.port, config.server.max_connections), ("127.0.0.1", 8443, 1000))
        self.assertIsNone(config.tls.cert_path)  # the dev PKI in ./certs, so the file starts as it is
        self.assertTrue(config.tls.require_client_cert)
        self.assertEqual(config.responses.default_delay_ms, 100)
        self.assertEqual(config.responses.error_rate_percent, 0)
        self.assertEqual(config.models.available, ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo"))

    def test_default_toml_takes_effect(self) -> None:
        """Its 100 ms default delay and its model list are what the server does."""
        config = load_config(str(EXAMPLES / "default.toml"))
        app, clock = scenario_app("default", config)
        conn = RawHTTP(app).send("POST", "/v1/chat/completions", CHAT_BODY)
        clock.advance(0.099)
        self.assertIsNone(conn.status)
        clock.advance(0.001)
        self.assertEqual(conn.status, 200)
        gpt4 = RawHTTP(app).send("POST", "/v1/chat/completions", {**CHAT_BODY, "model": "gpt-4"})
        self.assertEqual(gpt4.status, 404)

    def test_test_scenarios_toml(self) -> None:
        """test_scenarios.toml defines the four scenarios with the document's titles and numbers."""
        config = load_config(str(EXAMPLES / "test_scenarios.toml"))
        definitions = define(discover().scenarios, config.scenarios)
        self.assertEqual(definitions["errors"].title, "Error Scenarios")
        self.assertEqual(definitions["errors"].params["error_rate_percent"], 10)
        self.assertEqual(definitions["timeout"].params["default_delay_ms"], 30000)
        self.assertEqual(definitions["slow"].params["default_delay_ms"], 5000)
        self.assertEqual(definitions["fast"].params["default_delay_ms"], 10)

    def test_examples_through_options(self) -> None:
        """Both examples pass ``twist mockllm --config`` and a scenario from the file can be chosen."""
        for name in ("default.toml", "test_scenarios.toml"):
            options = tap.Options()
            options.parseOptions(["--config", str(EXAMPLES / name), "--scenario", "errors"])
            self.assertIn("errors", options.definitions)


class ErrorTests(ConfigCase):
    """Every kind of bad file stops the start, naming the file, the key and what was expected."""

    def test_missing_file(self) -> None:
        """A file that cannot be read."""
        with self.assertRaises(ConfigError) as raised:
            load_config(self.mktemp())
        self.assertIn("cannot read", str(raised.exception))

    def test_not_toml(self) -> None:
        """A syntax error."""
        self.assertIn("not valid TOML", self.problem("[server\nport = 1\n"))

    def raw_problem(self, data: bytes) -> str:
        """The one-line :class:`ConfigError` message for a file holding the bytes ``data``."""
        path = self.mktemp() + ".toml"
        with open(path, "wb") as f:
            f.write(data)
        with self.assertRaises(ConfigError) as raised:
            load_config(path)
        message = str(raised.exception)
        self.assertTrue(message.startswith(path + ": "), message)
        self.assertNotIn("\n", message)
        return message

    def test_not_utf8(self) -> None:
        """A file in another encoding: one line naming the file, the line and the byte, not a traceback."""
        message = self.raw_problem('[server]\nhost = "127.0.0.1"\n# caf\u00e9\n'.encode("latin-1"))
        self.assertIn("not UTF-8 text (line 3 has the byte 0xe9)", message)

    def test_bom(self) -> None:
        """A UTF-8 byte-order mark: one line saying so, not "Invalid statement"."""
        message = self.raw_problem(b"\xef\xbb\xbf[server]\nport = 1\n")
        self.assertIn("byte-order mark", message)

    def test_unknown_section(self) -> None:
        """An unknown table."""
        message = self.problem("[serverz]\nport = 1\n")
        self.assertIn("[serverz]", message)
        self.assertIn("expected one of server, tls, responses, models, scenarios", message)

    def test_section_not_table(self) -> None:
        """A section that is a value, not a table."""
        self.assertIn("expected a table", self.problem("server = 3\n"))

    def test_unknown_keys(self) -> None:
        """An unknown key in each section."""
        for section in ("server", "tls", "responses", "models"):
            message = self.problem(f"[{section}]\nbogus = 1\n")
            self.assertIn(f"[{section}] bogus: unknown key; expected one of", message)

    def test_wrong_types(self) -> None:
        """A value of the wrong type for each kind of key."""
        cases = {
            '[server]\nport = "8443"\n': "[server] port: expected a whole number from 0 to 65535, got \"8443\"",
            "[server]\nhost = 1\n": "[server] host: expected a non-empty string, got 1",
            "[server]\nmax_connections = true\n": "[server] max_connections: expected a whole number >= 1, got true",
            '[tls]\nrequire_client_cert = "yes"\n': "[tls] require_client_cert: expected true or false, got \"yes\"",
            "[tls]\ncert_path = 5\n": "[tls] cert_path: expected a non-empty string, got 5",
            '[responses]\nstreaming_enabled = 1\n': "[responses] streaming_enabled: expected true or false, got 1",
            '[responses]\nerror_rate_percent = "5"\n': "[responses] error_rate_percent: expected a number from 0 to 100",
            '[models]\navailable = "gpt-4o"\n': "[models] available: expected a non-empty array of non-empty strings",
            "[models]\navailable = [1]\n": "[models] available: expected a non-empty array of non-empty strings",
        }
        for text, expected in cases.items():
            self.assertIn(expected, self.problem(text))

    def test_impossible_values(self) -> None:
        """Values of the right type that cannot be."""
        cases = {
            "[server]\nport = 70000\n": "[server] port: expected a whole number from 0 to 65535, got 70000",
            "[server]\nhttp_port = -1\n": "[server] http_port",
            "[server]\nmax_connections = 0\n": "[server] max_connections: expected a whole number >= 1, got 0",
            "[responses]\ndefault_delay_ms = -5\n": "[responses] default_delay_ms: expected a whole number from 0 to 3600000",
            "[responses]\nerror_rate_percent = 101\n": "[responses] error_rate_percent: expected a number from 0 to 100",
            "[models]\navailable = []\n": "[models] available: expected a non-empty array",
            '[server]\nhost = ""\n': "[server] host: expected a non-empty string",
        }
        for text, expected in cases.items():
            self.assertIn(expected, self.problem(text))

    def test_tls_fault(self) -> None:
        """``[tls] fault`` must name a known fault; the error names the file, the key and the choices."""
        message = self.problem('[tls]\nfault = "bogus"\n')
        self.assertTrue(message.endswith(f": [tls] fault: expected one of {', '.join(TLS_FAULTS)}, got \"bogus\""), message)
        self.assertIn("[tls] fault: expected one of", self.problem("[tls]\nfault = 3\n"))
        for fault in TLS_FAULTS:
            self.assertEqual(parse_config({"tls": {"fault": fault}}).tls.fault, fault)
        self.assertIsNone(parse_config({"tls": {}}).tls.fault)

    def test_durations_have_a_maximum(self) -> None:
        """Every millisecond key, in ``[responses]`` and in scenario tables, stops at one hour."""
        for key in ["default_delay_ms", "stream_interval_ms", "timeout_ms", "max_delay_ms"]:
            message = self.problem(f"[responses]\n{key} = {'9' * 400}\n")
            self.assertIn(f"[responses] {key}: expected a whole number from 0 to 3600000", message)
            self.assertIn(f"[responses] {key}", self.problem(f"[responses]\n{key} = 3600001\n"))
        self.assertEqual(load_config(self.write("[responses]\ntimeout_ms = 3600000\n")).responses.timeout_ms, 3_600_000)
        for table, key in [("slow", "default_delay_ms"), ("realistic", "inter_token_ms"), ("chaos", "timeout_ms"),
                           ("ratelimited", "tokens_per_minute"), ("flaky", "fail_first")]:
            message = self.usage_problem(f"[scenarios.{table}]\n{key} = {10**15 * 10**15}\n")
            self.assertIn(f"[scenarios.{table}] {key}: expected a whole number from", message)

    def test_scenarios_shape(self) -> None:
        """``[scenarios]`` must hold tables."""
        self.assertIn("[scenarios.fast]: expected a table", self.problem("[scenarios]\nfast = 1\n"))

    def test_scenario_tables(self) -> None:
        """Bad ``[scenarios.NAME]`` tables stop ``twist mockllm`` with the file, table and key."""
        cases = {
            "[scenarios.x]\nbase = 'nope'\n": "[scenarios.x] base: expected one of",
            "[scenarios.x]\nbogus = 1\n": "[scenarios.x] bogus: unknown parameter of 'default'",
            "[scenarios.x]\nname = 5\n": "[scenarios.x] name: expected a non-empty string, got 5",
            "[scenarios.fast]\nerror_rate_percent = 150\n": "[scenarios.fast] error_rate_percent: expected a number from 0 to 100",
            "[scenarios.x]\nbase = 'flaky'\nfail_first = 'two'\n": "[scenarios.x] fail_first: expected a whole number from 0 to 1000000000, got \"two\"",
            "[scenarios.x]\nerror_statuses = [200]\n": "[scenarios.x] error_statuses: expected a non-empty array of HTTP error statuses",
        }
        for text, expected in cases.items():
            self.assertIn(expected, self.usage_problem(text))

    def test_bad_file_through_options(self) -> None:
        """A bad value is a UsageError from ``twist mockllm`` naming file and key."""
        self.assertIn("[server] port", self.usage_problem("[server]\nport = 'x'\n"))


class ScenarioTableTests(ConfigCase):
    """``[scenarios.NAME]`` defines scenarios beside the plugin ones."""

    def test_new_name_based_on_default(self) -> None:
        """A new name without ``base`` is the default scenario with its numbers."""
        path = self.write("[scenarios.quick]\nname = 'Quick'\ndefault_delay_ms = 5\nerror_rate_percent = 1.5\n")
        definitions = define(discover().scenarios, load_config(path).scenarios)
        quick = definitions["quick"]
        self.assertEqual((quick.title, quick.base), ("Quick", "default"))
        self.assertEqual(quick.params["default_delay_ms"], 5)
        self.assertEqual(quick.params["error_rate_percent"], 1.5)

    def test_new_name_with_base(self) -> None:
        """``base`` names the plugin a new scenario runs, with its own parameters."""
        path = self.write("[scenarios.very-flaky]\nbase = 'flaky'\nfail_first = 10\n")
        options = tap.Options()
        options.parseOptions(["--config", path, "--scenario", "very-flaky"])
        definition = options.definitions["very-flaky"]
        self.assertEqual((definition.base, definition.params["fail_first"]), ("flaky", 10))
        self.assertEqual(options.definitions["flaky"].params["fail_first"], 3)


class OverrideTests(ConfigCase):
    """Command-line options override the file; the file overrides the embedded defaults."""

    FILE = (
        "[server]\nhost = '0.0.0.0'\nhttp_port = 9000\nport = 9443\nmax_connections = 10\n"
        "[responses]\ndefault_delay_ms = 7\nerror_rate_percent = 3\n"
        "[tls]\nrequire_client_cert = false\ncerts_dir = 'elsewhere'\n"
        "[models]\navailable = ['gpt-4o-mini']\n"
    )

    def config(self, *argv: str) -> Config:
        """The configuration ``--config FILE argv...`` gives."""
        options = tap.Options()
        options.parseOptions(["--config", self.write(self.FILE), *argv])
        return tap.config_from_options(options)

    def test_file_applies(self) -> None:
        """Without options, every value comes from the file."""
        config = self.config()
        self.assertEqual((config.server.host, config.server.http_port, config.server.port), ("0.0.0.0", 9000, 9443))
        self.assertEqual(config.server.max_connections, 10)
        self.assertEqual((config.responses.default_delay_ms, config.responses.error_rate_percent), (7, 3.0))
        self.assertFalse(config.tls.require_client_cert)
        self.assertEqual(config.tls.certs_dir, "elsewhere")
        self.assertEqual(config.models.available, ("gpt-4o-mini",))

    def test_options_override(self) -> None:
        """Given options win, even when they repeat the built-in default."""
        config = self.config("--http-port", "8001", "--host", "127.0.0.1", "--https-port", "8443",
                             "--max-connections", "3", "--client-cert", "required", "--models", "gpt-4o")
        self.assertEqual((config.server.host, config.server.http_port, config.server.port), ("127.0.0.1", 8001, 8443))
        self.assertEqual(config.server.max_connections, 3)
        self.assertTrue(config.tls.require_client_cert)
        self.assertEqual(config.models.available, ("gpt-4o",))
        self.assertEqual(config.responses.default_delay_ms, 7)

    def test_disable_listeners(self) -> None:
        """``--no-http`` and ``--no-https`` override the file's ports."""
        self.assertIsNone(self.config("--no-http").server.http_port)
        self.assertIsNone(self.config("--no-https").server.port)

    def test_no_file(self) -> None:
        """Without ``--config`` the embedded defaults are unchanged."""
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(tap.config_from_options(options), Config())

    def test_relative_and_absolute(self) -> None:
        """A relative path works from the current directory."""
        path = self.write("[server]\nhttp_port = 9001\n")
        options = tap.Options()
        options.parseOptions(["--config", os.path.relpath(path)])
        self.assertEqual(tap.config_from_options(options).server.http_port, 9001)


class PrintConfigTests(ConfigCase):
    """``--print-config``: every default, commented, as a file that loads back to the same configuration."""

    def test_round_trip(self) -> None:
        """The printed defaults load to the embedded defaults, with a comment above the keys."""
        from mockllm.config import Config
        from mockllm.config.describe import render

        text = render()
        self.assertEqual(load_config(self.write(text)), Config())
        self.assertIn("# The listen(2) queue; Twisted's default of 50 drops SYNs under bursts.\nbacklog = 1024", text)
        self.assertIn("# ca_cert_path =  (unset)", text)

    def test_option_prints_the_file_given(self) -> None:
        """``--print-config --config FILE`` prints that file's configuration, then exits 0."""
        import contextlib
        import io

        path = self.write("[server]\nbacklog = 77\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as raised:
            tap.Options().parseOptions(["--print-config", "--config", path])
        self.assertEqual(raised.exception.code, 0)
        self.assertIn("backlog = 77", out.getvalue())
        self.assertEqual(load_config(self.write(out.getvalue())).server.backlog, 77)
