"""
The server's configuration: embedded defaults, as plain frozen dataclasses.

The TOML loader and the command line both produce a :class:`Config`; nothing
else in the server reads files or options.  Field names follow the
gpt-4o-mini plan's TOML keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "gpt-4")


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
    ca_cert_path: str | None = None
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
class Config:
    """Everything the server is configured with."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    #: ``[scenarios.NAME]`` tables: name -> parameters.
    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)
