"""
The configuration model: every default of the server, written once, as frozen dataclasses.

The TOML loader and the command line both produce a :class:`Config` (the command line's
option defaults are read from here); nothing else in the server reads files or options.
Field names follow the gpt-4o-mini plan's TOML keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "gpt-4")
#: The names of the ``--tls-fault`` / ``[tls] fault`` choices (see docs/mtls.md).
TLS_FAULTS: tuple[str, ...] = ("expired-server-cert", "wrong-host", "untrusted-server-cert")
#: The ``--client-cert`` / ``require_client_cert`` modes.
CLIENT_CERT_MODES: tuple[str, ...] = ("required", "optional")


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the listeners listen."""

    #: The interface every listener uses (``0.0.0.0`` or ``::`` for all of them).
    host: str = "127.0.0.1"
    #: The plain HTTP listener's port (0 picks a free one).
    http_port: int | None = 8001
    #: The mTLS listener's port (0 picks a free one).
    port: int | None = 8443
    #: Connections served at once; more get an immediate 503.
    max_connections: int = 1000
    #: The listen(2) queue; Twisted's default of 50 drops SYNs under bursts.
    backlog: int = 1024
    #: The largest request body accepted; larger ones get a 413 (from Content-Length, before reading it).
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class TLSConfig:
    """Certificate material for the mTLS listener (all ``None``: use ``certs_dir``)."""

    #: The server certificate, PEM (intermediates may follow it); unset: server.pem in certs_dir.
    cert_path: str | None = None
    #: Its unencrypted PEM private key; unset: server.key in certs_dir.
    key_path: str | None = None
    #: The CA bundles trusted for client certificates: one path, or several (all trusted); unset: ca.pem in certs_dir.
    ca_cert_path: tuple[str, ...] | None = None
    #: Refuse clients without a certificate (false: accept them; a presented one must still verify).
    require_client_cert: bool = True
    #: Where the development PKI lives; made there on first start when no file above is named.
    certs_dir: str = "certs"
    #: Serve a certificate correct clients refuse: expired-server-cert, wrong-host or untrusted-server-cert.
    fault: str | None = None


@dataclass(frozen=True)
class ResponsesConfig:
    """How completions are answered when no scenario or request says otherwise."""

    #: Delay before every completion, in ms.
    default_delay_ms: int = 0
    #: Percent of completions answered with an error (a 429, 500 or 503).
    error_rate_percent: float = 0.0
    #: Whether "stream": true is served (false: a 400).
    streaming_enabled: bool = True
    #: Pause before each streamed chunk after the first, in ms.
    stream_interval_ms: int = 20
    #: How long fail=timeout holds the connection before its 504, in ms.
    timeout_ms: int = 30_000
    #: The largest delay a request may ask for, in ms.
    max_delay_ms: int = 600_000


@dataclass(frozen=True)
class ModelsConfig:
    """The models ``/v1/models`` lists and completions accept."""

    #: The model ids /v1/models lists and completions accept.
    available: tuple[str, ...] = DEFAULT_MODELS


@dataclass(frozen=True)
class ObserveConfig:
    """The journal and the request log (command line only: ``--journal-size``, ``--request-log*``)."""

    #: Exchanges kept in memory for ``GET /__admin/requests``.
    journal_size: int = 1000
    #: ``--request-log FILE``, or ``None``: no request log.
    request_log: str | None = None
    #: Rotate the request log at this size in bytes (0: never).
    request_log_max_bytes: int = 10 * 1024 * 1024
    #: Rotated request logs kept (``FILE.1`` ... ``FILE.N``).
    request_log_keep: int = 5


@dataclass(frozen=True)
class VerdictConfig:
    """How the retry verdict (``GET /__admin/verdict``, ``mockllm.testing``) groups and judges attempts."""

    #: An attempt without ``x-stainless-retry-count`` is a retry of the previous failed attempt with
    #: the same method, path and body if it starts within this many ms of that attempt's end.
    window_ms: int = 60_000
    #: The attempts one logical request may take before the verdict flags it (the SDK's 2 retries + 1).
    attempt_budget: int = 3


@dataclass(frozen=True)
class Config:
    """Everything the server is configured with."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    #: ``[scenarios.NAME]`` tables: name -> parameters.
    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)
