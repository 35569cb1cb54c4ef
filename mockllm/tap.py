"""
``twist mockllm`` / ``twistd mockllm``: command-line options and ``makeService``.

:class:`Options` checks every value as it parses (defaults come from
:mod:`mockllm.config.model`); :func:`makeService` turns them into a configuration and hands
it to :func:`mockllm.server.build`, which makes one listener per endpoint: the repeatable
``--listen`` endpoint strings, or the shorthand ``--http-port``/``--https-port``/``--tls-*``.
"""

from __future__ import annotations

import getopt
import os
import socket
import sys
from dataclasses import replace

import twisted
from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage

import mockllm
from mockllm.admin.access import AdminAccess, Network, parse_networks
from mockllm.behaviour.rules import RuleError, parse_rules
from mockllm.behaviour.scenarios import ScenarioRunner, UnknownScenario, define, discover, listing
from mockllm.config import DEFAULT_MODELS, TLS_FAULTS, Config, ModelsConfig, ObserveConfig, ResponsesConfig, ServerConfig, TLSConfig
from mockllm.config.checks import MAX_MS, apply, one_of, seconds
from mockllm.config.model import CLIENT_CERT_MODES
from mockllm.http.drain import TermStops
from mockllm.observe.output import adjust_twist_output
from mockllm.server import Listener, Observers, ServerCollector, build, listen_descriptions
from mockllm.startup import StartFailed

_log = Logger()
_SERVER = ServerConfig()
_RESPONSES = ResponsesConfig()
_TLS = TLSConfig()
_OBSERVE = ObserveConfig()


def _port(name: str):
    """The coercer of port option ``name``: a usage error naming the option for anything but 0-65535."""

    def coerce(value: str) -> int:
        try:
            port = int(value)
        except ValueError:
            raise usage.UsageError(f"--{name}: a port must be a number from 0 to 65535, not {value!r}") from None
        if not 0 <= port <= 65535:
            raise usage.UsageError(f"--{name}: a port must be a number from 0 to 65535, not {port}")
        return port

    return coerce


def _seed(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise usage.UsageError(f"--seed must be a whole number, not {value!r}") from None


def _positive_int(name: str, value: str, minimum: int = 1, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise usage.UsageError(f"--{name} must be at least {minimum}, not {number}")
    if maximum is not None and number > maximum:
        raise usage.UsageError(f"--{name} must be at most {maximum}, not {number}")
    return number


def _seconds(name: str, value: str) -> float:
    """Coerce a seconds option: a number from 0 to an hour (:func:`mockllm.config.checks.seconds`)."""
    try:
        number = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number of seconds, not {value!r}") from None
    return _checked(seconds(), number, f"--{name}")


def _checked(check, value: object, option: str) -> object:
    """``check(value)`` (see :mod:`mockllm.config.checks`), a failure as a usage error naming ``option``."""
    try:
        return apply(check, value, option)
    except ValueError as error:
        raise usage.UsageError(str(error)) from None


def admin_networks(value: str) -> tuple[Network, ...]:
    """Coerce ``--admin-from``: comma-separated CIDRs, or a usage error naming the bad one."""
    try:
        return parse_networks(value)
    except ValueError as error:
        raise usage.UsageError(f"--admin-from: {error}") from None


def _load_file(path: str) -> Config:
    """The configuration file at ``path``; a problem in it as a usage error.

    The TOML reader is imported here, not at the top: a start without ``--config`` never needs
    it (``tomllib`` and the file schema: ~5 ms of each start).
    """
    from mockllm.config.toml import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise usage.UsageError(str(e)) from None


class Options(usage.Options):
    """Options for ``twist mockllm``; every value is checked before anything starts."""

    synopsis = "[options]"
    longdesc = (
        "Serve a mock of the OpenAI API: plain HTTP on 127.0.0.1:8001 and HTTPS requiring "
        "verified client certificates (mTLS) on 127.0.0.1:8443 by default (a development PKI "
        "is made in ./certs).  --listen takes Twisted endpoint strings instead (tcp:, unix:, "
        "mtls:).  Per-request failure controls (?delay=, ?fail=, ?stream=, ?fail_chunk=, or "
        "X-Mock-* headers) are described in docs/api.md; the configuration file in "
        "docs/scenarios.md (--print-config writes one with every default)."
    )

    optFlags = [
        ["no-http", None, "Do not serve plain HTTP."],
        ["no-https", None, "Do not serve HTTPS (mTLS)."],
        ["list-scenarios", None, "Print each scenario, what it does and its parameters, then exit."],
        ["no-admin", None, "Serve no admin API: /__admin/... are then 404s like any unknown URL."],
        ["print-config", None, "Print the whole configuration with every default, as a commented TOML file, then exit."],
    ]

    optParameters = [
        ["config", None, None, "TOML configuration file (command-line options override it); see docs/scenarios.md."],
        ["scenario", None, None, "Scenario for requests that name none with X-Mock-Scenario (default: default)."],
        ["scenario-path", None, None, "A directory of extra scenario modules (*.py directly inside it)."],
        ["seed", None, None, "Seed every random choice: the same requests then get the same answers.", _seed],
        ["max-connections", None, None, f"Connections served at once; more get a 503 (default {_SERVER.max_connections}).",
         lambda v: _positive_int("max-connections", v)],
        ["host", None, _SERVER.host, "Interface to listen on (an IPv4 or IPv6 address)."],
        ["http-port", None, _SERVER.http_port, "Plain HTTP port (0 picks a free one).", _port("http-port")],
        ["backlog", None, _SERVER.backlog, "listen(2) backlog for every listener.", lambda v: _positive_int("backlog", v)],
        ["max-body-bytes", None, _SERVER.max_body_bytes, "Largest request body accepted; larger get a 413.",
         lambda v: _positive_int("max-body-bytes", v)],
        ["idle-timeout-s", None, _SERVER.idle_timeout_s,
         "Close a keep-alive connection after this many seconds without a request (0: never).",
         lambda v: _seconds("idle-timeout-s", v)],
        ["header-timeout-s", None, _SERVER.header_timeout_s,
         "Close a connection whose request headers take longer than this many seconds to arrive (0: never).",
         lambda v: _seconds("header-timeout-s", v)],
        ["shutdown-grace-s", None, _SERVER.shutdown_grace_s,
         "On SIGTERM, seconds that requests in flight may take to finish (waiting answers end at once).",
         lambda v: _seconds("shutdown-grace-s", v)],
        ["stream-interval-ms", None, None, f"Pause between streamed chunks in ms (default {_RESPONSES.stream_interval_ms}, at most {MAX_MS})."],
        ["timeout-ms", None, None, f"How long fail=timeout and fail=stall hold the connection, in ms (default {_RESPONSES.timeout_ms}, at most {MAX_MS})."],
        ["max-delay-ms", None, None, f"The largest delay a request may ask for, in ms (default {_RESPONSES.max_delay_ms}, at most {MAX_MS})."],
        ["models", None, None, f"Comma-separated model ids to serve (default {','.join(DEFAULT_MODELS)})."],
        ["https-port", None, _SERVER.port, "HTTPS (mTLS) port (0 picks a free one).", _port("https-port")],
        ["tls-cert", None, None, "Server certificate, PEM (default: server.pem in --certs-dir)."],
        ["tls-key", None, None, "Server private key, PEM (default: server.key in --certs-dir)."],
        ["certs-dir", None, _TLS.certs_dir, "Where the development PKI lives; generated there if missing and no --tls-* is given."],
        ["client-cert", None, "required", "required: refuse clients without a certificate; optional: accept them (a presented one must verify)."],
        ["tls-fault", None, None, "Serve a bad server certificate: " + ", ".join(TLS_FAULTS) + "."],
        ["request-log", None, None, "Append every request and its answer to this file, one JSON object per line."],
        ["request-log-max-bytes", None, _OBSERVE.request_log_max_bytes, "Rotate the request log at this size (0: never).",
         lambda v: _positive_int("request-log-max-bytes", v, minimum=0)],
        ["request-log-keep", None, _OBSERVE.request_log_keep, "Rotated request logs kept (FILE.1 ... FILE.N).",
         lambda v: _positive_int("request-log-keep", v)],
        ["journal-size", None, _OBSERVE.journal_size, "Requests kept in memory for GET /__admin/requests.",
         lambda v: _positive_int("journal-size", v, minimum=0)],
        ["admin-from", None, None, "Networks (CIDR[,CIDR]) besides loopback that may use /__admin/ over plain HTTP.",
         admin_networks],
    ]

    def opt_listen(self, description: str) -> None:
        """An endpoint to serve (repeatable): tcp:8001, mtls:8443, unix:/path/mockllm.sock, ...

        With --listen, only the listeners given are served (plus --http-port/--https-port if
        given too).
        """
        if not description.strip():
            raise usage.UsageError("--listen needs an endpoint description such as tcp:8001 or mtls:8443")
        self.setdefault("listen", []).append(description)

    def opt_api_key(self, key: str) -> None:
        """An API key the /v1/ routes accept in Authorization: Bearer (repeatable; none given: no check)."""
        if not key.strip():
            raise usage.UsageError("--api-key needs a key, such as --api-key sk-test")
        self["api-key"] = (*(self.get("api-key") or ()), key.strip())

    def opt_tls_ca(self, path: str) -> None:
        """A PEM bundle of CAs trusted for client certificates (repeatable: all are trusted; default: ca.pem in --certs-dir)."""
        self["tls-ca"] = (*(self.get("tls-ca") or ()), path)

    def opt_client_cert(self, value: str) -> None:
        """required|optional: whether a client certificate is required."""
        self["client-cert"] = _checked(one_of(CLIENT_CERT_MODES), value, "--client-cert")

    def opt_tls_fault(self, value: str) -> None:
        """One of expired-server-cert, wrong-host, untrusted-server-cert."""
        self["tls-fault"] = _checked(one_of(TLS_FAULTS), value, "--tls-fault")

    def opt_models(self, value: str) -> None:
        """Comma-separated model ids to serve."""
        models = tuple(m.strip() for m in value.split(",") if m.strip())
        if not models:
            raise usage.UsageError("--models needs at least one model id")
        self["models"] = models

    #: The ``--config`` file's configuration, once :meth:`postOptions` has read it.
    file_config: Config | None = None
    #: The selectable scenarios (see :func:`mockllm.scenario.define`), once :meth:`postOptions` has run.
    definitions: dict | None = None
    #: Scenario modules that failed to load, one line each.
    scenario_problems: tuple[str, ...] = ()

    def parseOptions(self, options: list[str] | None = None) -> None:
        """Parse, remembering which options the command line actually gave (see :meth:`was_given`).

        Under ``twist``/``twistd`` (as their subcommand) a bad value ends the program with one line
        and a hint, exit status 64 (``EX_USAGE``), instead of Twisted's error and whole usage.
        """
        argv = sys.argv[1:] if options is None else list(options)
        self._given = self._names_in(argv)
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"mockllm: error: {error}\nsee: twist mockllm --help\n")
            raise SystemExit(64) from None

    def opt_version(self) -> None:
        """Print mockllm's version (and Twisted's), then exit."""
        print(f"mockllm {mockllm.__version__} (Twisted {twisted.__version__})")
        raise SystemExit(0)

    def _names_in(self, argv: list[str]) -> frozenset[str]:
        """The options ``argv`` gives, by their long names (as Twisted's parser reads them)."""
        try:
            opts, _ = getopt.getopt(argv, self.shortOpt, self.longOpt)
        except getopt.GetoptError:
            return frozenset()  # parseOptions reports it
        names = set()
        for opt, _value in opts:
            bare = opt.lstrip("-")
            names.add(self.synonyms.get(bare) or self.synonyms.get(bare.replace("-", "_"), bare))
        return frozenset(name.replace("_", "-") for name in names)

    def was_given(self, name: str) -> bool:
        """Whether option ``name`` was given (or set to something other than its default)."""
        return name in getattr(self, "_given", ()) or self.get(name) != self.defaults.get(name)

    def given_fields(self, table: dict[str, str]) -> dict[str, object]:
        """``{field: value}`` for each option in ``table`` (option -> config field) that was given."""
        return {field_name: self[option] for option, field_name in table.items() if self.was_given(option)}

    def load_scenarios(self) -> None:
        """Read ``--config``, discover scenarios, check ``--scenario``; ``--list-scenarios`` prints and exits."""
        if self["config"] is not None:
            self.file_config = _load_file(self["config"])
        if self.file_config is not None:
            responses = self.file_config.responses
            try:
                parse_rules(self.file_config.rules, responses.max_delay_ms, responses.timeout_ms / 1000)
            except RuleError as e:
                raise usage.UsageError(f"{self['config']}: {e}") from None
        found = discover(self._scenario_paths())
        self.scenario_problems = tuple(found.report())
        try:
            self.definitions = define(found.scenarios, self.file_config.scenarios if self.file_config else {})
        except ValueError as e:
            raise usage.UsageError(f"{self['config']}: {e}") from None
        if self["list-scenarios"]:
            print("\n".join([listing(self.definitions), *self.scenario_problems]))
            raise SystemExit(0)
        name = self["scenario"] or "default"
        if name not in self.definitions:
            raise usage.UsageError(f"--scenario: {UnknownScenario.among(name, self.definitions)}")

    def _scenario_paths(self) -> list[str]:
        path = self["scenario-path"]
        if path is None:
            return []
        if not os.path.isdir(path):
            raise usage.UsageError(f"--scenario-path: {path!r} is not a directory")
        return [os.path.abspath(path)]

    def postOptions(self) -> None:
        """Check the numeric options and that something will listen; make ``twist``'s output readable."""
        if self["print-config"]:
            self._print_config()
        parent = getattr(self, "parent", None)
        if parent is not None and "fileLogObserverFactory" in parent:  # running under ``twist``
            adjust_twist_output(parent, sys.argv)
        self.load_scenarios()
        for name in ("stream-interval-ms", "timeout-ms", "max-delay-ms"):
            if self[name] is not None:
                self[name] = _positive_int(name, self[name], minimum=0, maximum=MAX_MS)
        if self["no-http"] and not self.listeners_left():
            raise usage.UsageError("nothing to serve: every listener is disabled")
        self.setdefault("listen", [])
        if (self["tls-cert"] is None) != (self["tls-key"] is None):
            raise usage.UsageError("--tls-cert and --tls-key go together: give both or neither")
        if self["no-https"] and self["tls-fault"]:
            raise usage.UsageError("--tls-fault needs the HTTPS listener, but --no-https is given")

    def _print_config(self) -> None:
        """``--print-config``: the configuration (the ``--config`` file's, else the defaults), then exit."""
        from mockllm.config import describe  # only --print-config needs it (and ast, inspect)

        config = _load_file(self["config"]) if self["config"] else None
        sys.stdout.write(describe.render(config))
        raise SystemExit(0)

    def listeners_left(self) -> bool:
        """Whether any listener other than plain HTTP is enabled."""
        return not self["no-https"] or bool(self.get("listen"))


def config_from_options(options: Options) -> Config:
    """
    The :class:`Config`: the ``--config`` file (else the embedded defaults) with the
    options the command line gave applied over it.
    """
    config = options.file_config or Config()
    server = replace(config.server, **options.given_fields(SERVER_OPTIONS))
    if options.get("api-key"):
        server = replace(server, api_keys=tuple(dict.fromkeys((*server.api_keys, *options["api-key"]))))
    if options["no-http"]:
        server = replace(server, http_port=None)
    if options["no-https"]:
        server = replace(server, port=None)
    responses = replace(config.responses, **options.given_fields(RESPONSES_OPTIONS))
    models = config.models if options["models"] is None else ModelsConfig(tuple(options["models"]))
    tls_config = replace(config.tls, **options.given_fields(TLS_OPTIONS))
    if options.was_given("client-cert"):
        tls_config = replace(tls_config, require_client_cert=options["client-cert"] == "required")
    return replace(config, server=server, tls=tls_config, responses=responses, models=models)


#: Command-line option -> ``[server]`` field it overrides.
SERVER_OPTIONS = {
    "host": "host",
    "http-port": "http_port",
    "https-port": "port",
    "backlog": "backlog",
    "max-connections": "max_connections",
    "max-body-bytes": "max_body_bytes",
    "idle-timeout-s": "idle_timeout_s",
    "header-timeout-s": "header_timeout_s",
    "shutdown-grace-s": "shutdown_grace_s",
}
#: Command-line option -> ``[responses]`` field it overrides.
RESPONSES_OPTIONS = {
    "stream-interval-ms": "stream_interval_ms",
    "timeout-ms": "timeout_ms",
    "max-delay-ms": "max_delay_ms",
}
#: Command-line option -> ``[tls]`` field it overrides (``--client-cert`` is converted separately).
TLS_OPTIONS = {
    "tls-cert": "cert_path",
    "tls-key": "key_path",
    "tls-ca": "ca_cert_path",
    "certs-dir": "certs_dir",
    "tls-fault": "fault",
}


def scenario_runner(options: Options, config: Config, reactor) -> ScenarioRunner:
    """The scenario layer the options ask for (their ``definitions``, ``--scenario``, ``--seed``)."""
    if options.definitions is None:
        options.load_scenarios()
    for problem in options.scenario_problems:
        _log.warn("mockllm: {problem}; the other scenarios are available", problem=problem)
    return ScenarioRunner(
        options.definitions, reactor, options["scenario"] or "default", options["seed"], config.responses
    )


def observe_config(options: Options) -> ObserveConfig:
    """The journal and request log the options ask for."""
    return ObserveConfig(
        journal_size=options["journal-size"],
        request_log=options["request-log"],
        request_log_max_bytes=options["request-log-max-bytes"],
        request_log_keep=options["request-log-keep"],
    )


def listeners(options: Options, config: Config) -> list[Listener]:
    """What to serve: the ``--listen`` endpoints (with the shorthand ports given too), else the configuration's."""
    given = options.get("listen") or []
    if not given:
        return listen_descriptions(config)
    server = replace(
        config.server,
        http_port=config.server.http_port if options.was_given("http-port") else None,
        port=config.server.port if options.was_given("https-port") else None,
    )
    shorthand = listen_descriptions(replace(config, server=server))
    return shorthand + [Listener(description, description) for description in given]


def makeService(options: Options) -> IService:
    """The server: a ``MultiService`` of listeners sharing one site."""
    from twisted.internet import reactor

    config = config_from_options(options)
    scenarios = scenario_runner(options, config, reactor)
    access = None if options["no-admin"] else AdminAccess(options["admin-from"] or ())
    observe = observe_config(options)
    serving = listeners(options, config)
    preflight(serving, config)
    for line in banner(options, config, scenarios, observe):
        _log.info("{line}", line=line)
    top, _ = build(config, reactor, scenarios, Observers.from_config(observe), access, serving, options["seed"])
    TermStops(reactor, config.server.shutdown_grace_s).setServiceParent(top)
    ServerCollector().setServiceParent(top)
    return top


def banner(options: Options, config: Config, scenarios: ScenarioRunner, observe: ObserveConfig) -> list[str]:
    """The start-up lines: version, configuration file, scenario, seed, models, request log, API keys and rules."""
    seed = str(options["seed"]) if options["seed"] is not None else f"{scenarios.seed} (random; --seed {scenarios.seed} repeats this run)"
    return [
        f"mockllm {mockllm.__version__}: configuration {options['config'] or 'embedded defaults (--print-config shows them)'}",
        f"mockllm: scenario {scenarios.current}",
        f"mockllm: seed {seed}",
        f"mockllm: models {', '.join(config.models.available)}",
        f"mockllm: request log {observe.request_log or 'off (--request-log FILE)'}",
        f"mockllm: API keys {len(config.server.api_keys) or 'off (--api-key KEY)'}, response rules {len(config.rules)}",
    ]


def preflight(serving: list[Listener], config: Config) -> None:
    """Stop now, with one line, if a fixed TCP port of the shorthand listeners is taken.

    ``twistd`` binds only after it has daemonized, and its launcher can then only print a
    cut-off ``repr``; checking here, before that, keeps the message whole.  Endpoints given
    with ``--listen`` are checked when they bind.
    """
    server = config.server
    for listener, port in ((server.http_port, "HTTP"), (server.port, "HTTPS (mTLS)")):
        if not listener:
            continue
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((server.host, listener))
            except OSError as error:
                raise StartFailed(
                    f"mockllm: cannot listen for {port} on {server.host}:{listener}: {error.strerror}"
                ) from None


__all__ = ["Options", "config_from_options", "makeService"]
