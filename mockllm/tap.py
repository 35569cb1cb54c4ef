"""
``twist mockllm`` / ``twistd mockllm``: command-line options and ``makeService``.

``makeService`` builds a ``MultiService`` holding one :class:`ListenerService`
per listener, all serving the same :class:`~mockllm.app.MockLLM` site.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from mockllm import observe, pki, tls
from mockllm.app import MockLLM, StoppingMarker
from mockllm.config import Config, ModelsConfig, ResponsesConfig, ServerConfig
from mockllm.connlimit import ConnectionLimit
from mockllm.listen import ListenerService, MockSite
from mockllm.scenario import ScenarioRunner, UnknownScenario, define, discover, listing
from mockllm.toml_config import MAX_MS, ConfigError, load_config

_log = Logger()
EXAMPLE_BODY = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise usage.UsageError(f"a port must be a number from 0 to 65535, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"a port must be a number from 0 to 65535, not {port}")
    return port


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


class Options(usage.Options):
    """Options for ``twist mockllm``; every value is checked before anything starts."""

    synopsis = "[options]"
    longdesc = (
        "Serve a mock of the OpenAI API: plain HTTP on 127.0.0.1:8001 by default.  "
        "Per-request failure controls (?delay=, ?fail=, ?stream=, ?fail_chunk=, or "
        "X-Mock-* headers) are described in docs/api.md."
    )

    optFlags = [
        ["no-http", None, "Do not serve plain HTTP."],
        ["no-https", None, "Do not serve HTTPS (mTLS)."],
        ["list-scenarios", None, "Print each scenario, what it does and its parameters, then exit."],
        ["no-admin", None, "Serve no admin API: /__admin/... are then 404s like any unknown URL."],
    ]

    optParameters = [
        ["config", None, None, "TOML configuration file (command-line options override it); see docs/scenarios.md."],
        ["scenario", None, None, "Scenario for requests that name none with X-Mock-Scenario (default: default)."],
        ["scenario-path", None, None, "A directory of extra scenario modules (*.py directly inside it)."],
        ["seed", None, None, "Seed every random choice: the same requests then get the same answers.", _seed],
        ["max-connections", None, None, "Connections served at once; more get a 503 (default 1000).",
         lambda v: _positive_int("max-connections", v)],
        ["host", None, "127.0.0.1", "Interface to listen on (an IPv4 or IPv6 address)."],
        ["http-port", None, 8001, "Plain HTTP port (0 picks a free one).", _port],
        ["backlog", None, 1024, "listen(2) backlog for every listener.", lambda v: _positive_int("backlog", v)],
        ["max-body-bytes", None, 16 * 1024 * 1024, "Largest completion request body accepted; larger get a 413.",
         lambda v: _positive_int("max-body-bytes", v)],
        ["stream-interval-ms", None, None, f"Pause between streamed chunks in ms (default 20, at most {MAX_MS})."],
        ["timeout-ms", None, None, f"How long fail=timeout holds the connection, in ms (default 30000, at most {MAX_MS})."],
        ["max-delay-ms", None, None, f"The largest delay a request may ask for, in ms (default 600000, at most {MAX_MS})."],
        ["models", None, None, "Comma-separated model ids to serve (default gpt-4o-mini,gpt-4o,gpt-3.5-turbo,gpt-4)."],
        ["https-port", None, 8443, "HTTPS (mTLS) port (0 picks a free one).", _port],
        ["tls-cert", None, None, "Server certificate, PEM (default: server.pem in --certs-dir)."],
        ["tls-key", None, None, "Server private key, PEM (default: server.key in --certs-dir)."],
        ["tls-ca", None, None, "PEM bundle of the CAs trusted for client certificates (default: ca.pem in --certs-dir)."],
        ["certs-dir", None, "certs", "Where the development PKI lives; generated there if missing and no --tls-* is given."],
        ["client-cert", None, "required", "required: refuse clients without a certificate; optional: accept them (a presented one must verify)."],
        ["tls-fault", None, None, "Serve a bad server certificate: " + ", ".join(pki.TLS_FAULTS) + "."],
        ["request-log", None, None, "Append every request and its answer to this file, one JSON object per line."],
        ["request-log-max-bytes", None, observe.DEFAULT_MAX_BYTES, "Rotate the request log at this size (0: never).",
         lambda v: _positive_int("request-log-max-bytes", v, minimum=0)],
        ["request-log-keep", None, observe.DEFAULT_KEEP, "Rotated request logs kept (FILE.1 ... FILE.N).",
         lambda v: _positive_int("request-log-keep", v)],
        ["journal-size", None, observe.JOURNAL_SIZE, "Requests kept in memory for GET /__admin/requests.",
         lambda v: _positive_int("journal-size", v, minimum=0)],
        ["admin-from", None, None, "Networks (CIDR[,CIDR]) besides loopback that may use /__admin/ over plain HTTP.",
         observe.admin_networks],
    ]

    def opt_client_cert(self, value: str) -> None:
        """required|optional: whether a client certificate is required."""
        if value not in tls.CLIENT_CERT_MODES:
            raise usage.UsageError(f"--client-cert must be required or optional, not {value!r}")
        self["client-cert"] = value

    def opt_tls_fault(self, value: str) -> None:
        """One of expired-server-cert, wrong-host, untrusted-server-cert."""
        if value not in pki.TLS_FAULTS:
            raise usage.UsageError(f"--tls-fault must be one of {', '.join(pki.TLS_FAULTS)}, not {value!r}")
        self["tls-fault"] = value

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
        """Parse, remembering which options the command line actually gave (see :meth:`was_given`)."""
        self._given: set[str] = set()
        for name, handler in list(self._dispatch.items()):
            self._dispatch[name] = _recording(handler, self._given)
        super().parseOptions(options)

    def was_given(self, name: str) -> bool:
        """Whether option ``name`` was given (or set to something other than its default)."""
        return name in getattr(self, "_given", ()) or self.get(name) != self.defaults.get(name)

    def given_fields(self, table: dict[str, str]) -> dict[str, object]:
        """``{field: value}`` for each option in ``table`` (option -> config field) that was given."""
        return {field_name: self[option] for option, field_name in table.items() if self.was_given(option)}

    def load_scenarios(self) -> None:
        """Read ``--config``, discover scenarios, check ``--scenario``; ``--list-scenarios`` prints and exits."""
        if self["config"] is not None:
            try:
                self.file_config = load_config(self["config"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None
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
        """Check the numeric options and that something will listen."""
        self.load_scenarios()
        for name in ("stream-interval-ms", "timeout-ms", "max-delay-ms"):
            if self[name] is not None:
                self[name] = _positive_int(name, self[name], minimum=0, maximum=MAX_MS)
        if self["no-http"] and not self.listeners_left():
            raise usage.UsageError("nothing to serve: every listener is disabled")
        if (self["tls-cert"] is None) != (self["tls-key"] is None):
            raise usage.UsageError("--tls-cert and --tls-key go together: give both or neither")
        if self["no-https"] and self["tls-fault"]:
            raise usage.UsageError("--tls-fault needs the HTTPS listener, but --no-https is given")

    def listeners_left(self) -> bool:
        """Whether any listener other than plain HTTP is enabled."""
        return not self["no-https"]


def _recording(handler, given: set[str]):
    """``handler`` (an option's dispatcher), also noting the option's name in ``given``."""
    if hasattr(handler, "dispatch"):  # usage.CoerceParameter
        original = handler.dispatch

        def dispatch(name: str, value: str) -> None:
            given.add(name)
            original(name, value)

        handler.dispatch = dispatch
        return handler

    def record(name: str, *value: str) -> None:
        given.add(name)
        handler(name, *value)

    return record


def config_from_options(options: Options) -> Config:
    """
    The :class:`Config`: the ``--config`` file (else the embedded defaults) with the
    options the command line gave applied over it.
    """
    config = options.file_config or Config()
    server = replace(config.server, **options.given_fields(SERVER_OPTIONS))
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


def tcp_endpoint(reactor, host: str, port: int, backlog: int):
    """A TCP server endpoint for ``host`` (IPv4 or IPv6) with a real backlog."""
    if ":" in host:
        return TCP6ServerEndpoint(reactor, port, backlog=backlog, interface=host)
    return TCP4ServerEndpoint(reactor, port, backlog=backlog, interface=host)


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 in brackets; the wildcard as localhost)."""
    if host in tls.WILDCARDS:
        return "localhost"
    return f"[{host}]" if ":" in host else host


def http_announcement(host: str) -> "callable":
    """A function describing a plain HTTP listener with a curl command to paste."""

    def announce(port: IListeningPort) -> str:
        base = f"http://{url_host(host)}:{port.getHost().port}"
        return (
            f"mockllm: HTTP on {base} -- try: curl {base}/v1/chat/completions "
            f"-H 'Content-Type: application/json' -d '{EXAMPLE_BODY}'"
        )

    return announce


def https_announcement(host: str, dev: pki.DevPKI | None) -> "callable":
    """A function describing the mTLS listener with a curl command to paste."""

    name = url_host(tls.client_name(host))

    def announce(port: IListeningPort) -> str:
        number = port.getHost().port
        if dev is not None:
            curl = dev.curl_command(number, name)
        else:
            curl = f"curl --cacert SERVER-CA.pem --cert CLIENT.pem --key CLIENT.key https://{name}:{number}/v1/models"
        return f"mockllm: HTTPS (mTLS) on https://{name}:{number} -- try: {curl}"

    return announce


def build_app(config: Config, reactor, seed: int | None = None, scenarios: ScenarioRunner | None = None) -> MockLLM:
    """The app for ``config``, on ``reactor``'s clock (``scenarios``: the built-ins and ``config``'s, on ``default``)."""
    if scenarios is None:
        definitions = define(discover().scenarios, config.scenarios)
        scenarios = ScenarioRunner(definitions, reactor, seed=seed, responses=config.responses)
    return MockLLM(config, reactor, rng=random.Random(seed), scenarios=scenarios)


def scenario_runner(options: Options, config: Config, reactor) -> ScenarioRunner:
    """The scenario layer the options ask for (their ``definitions``, ``--scenario``, ``--seed``)."""
    if options.definitions is None:
        options.load_scenarios()
    for problem in options.scenario_problems:
        _log.warn("mockllm: {problem}; the other scenarios are available", problem=problem)
    return ScenarioRunner(
        options.definitions, reactor, options["scenario"] or "default", options["seed"], config.responses
    )


def add_https_listener(top: MultiService, config: Config, site: object, reactor) -> tls.ReloadableServerTLS:
    """The mTLS listener (and its SIGHUP reload) as children of ``top``; exits on unusable material."""
    server: ServerConfig = config.server
    try:
        server_tls, dev = tls.server_tls_from_config(config.tls, server.host)
    except tls.TLSConfigError as e:
        raise SystemExit(f"mockllm: HTTPS: {e}") from None
    endpoint = SSL4ServerEndpoint(reactor, server.port, server_tls, backlog=server.backlog, interface=server.host)
    description = f"HTTPS (mTLS) on {server.host}:{server.port}"
    ListenerService(endpoint, site, description, https_announcement(server.host, dev)).setServiceParent(top)
    tls.TLSReloadService(server_tls, reactor).setServiceParent(top)
    return server_tls


def makeService(options: Options) -> IService:
    """The server: a ``MultiService`` of listeners sharing one site."""
    from twisted.internet import reactor

    config = config_from_options(options)
    app = build_app(config, reactor, options["seed"], scenario_runner(options, config, reactor))
    site = ConnectionLimit(MockSite(app.resource()), config.server.max_connections, reactor, app.record)
    top = MultiService()
    StoppingMarker(app).setServiceParent(top)
    observe.from_options(options).attach(app, top)
    server: ServerConfig = config.server
    if server.http_port is not None:
        endpoint = tcp_endpoint(reactor, server.host, server.http_port, server.backlog)
        listener = ListenerService(endpoint, site, f"HTTP on {server.host}:{server.http_port}", http_announcement(server.host))
        listener.setServiceParent(top)
    if server.port is not None:
        app.server_tls = add_https_listener(top, config, site, reactor)
        app.server_tls.on_handshake = app.metrics.handshake
    return top


__all__ = ["Options", "makeService", "config_from_options", "ResponsesConfig"]
