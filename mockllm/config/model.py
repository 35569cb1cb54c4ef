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

    host: str = "127.0.0.1"
    http_port: int | None = 8001
    #: The mTLS listener's port (``[server] port`` in the TOML file).
    port: int | None = 8443
    max_connections: int = 1000
    #: The listen(2) queue; Twisted's default of 50 drops SYNs under bursts.
    backlog: int = 1024
    #: The largest completion request body accepted; larger ones get a 413.
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class TLSConfig:
    """Certificate material for the mTLS listener (all ``None``: use ``certs_dir``)."""

    cert_path: str | None = None
    key_path: str | None = None
    #: The CA bundles trusted for client certificates: one path, or several (all trusted).
    ca_cert_path: str | tuple[str, ...] | None = None
    require_client_cert: bool = True
    certs_dir: str = "certs"
    #: ``--tls-fault``: serve a certificate correct clients refuse (see docs/mtls.md).
    fault: str | None = None


@dataclass(frozen=True)
class ResponsesConfig:
    """How completions are answered when no scenario or request says otherwise."""

    default_delay_ms: int = 0
    error_rate_percent: float = 0.0
    streaming_enabled: bool = True
    #: Pause before each streamed content chunk.
    stream_interval_ms: int = 20
    #: How long ``fail=timeout`` holds the connection before its 504.
    timeout_ms: int = 30_000
    #: The largest ``delay`` a request may ask for.
    max_delay_ms: int = 600_000


@dataclass(frozen=True)
class ModelsConfig:
    """The models ``/v1/models`` lists and completions accept."""

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
class Config:
    """Everything the server is configured with."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    #: ``[scenarios.NAME]`` tables: name -> parameters.
    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)
