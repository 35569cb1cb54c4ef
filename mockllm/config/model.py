"""
The configuration model: every default of the server, written once, as frozen dataclasses.

The TOML loader and the command line both produce a :class:`Config` (the command line's
option defaults are read from here); nothing else in the server reads files or options.
Field names follow the gpt-4o-mini plan's TOML keys.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Mapping

from mockllm.frozen import Frozen, frozen

#: The embedding models and their native vector length (``POST /v1/embeddings`` answers only these).
EMBEDDING_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "gpt-4", *EMBEDDING_DIMENSIONS)
#: The names of the ``--tls-fault`` / ``[tls] fault`` choices (see docs/mtls.md).
TLS_FAULTS: tuple[str, ...] = ("expired-server-cert", "wrong-host", "untrusted-server-cert")
#: The ``--client-cert`` / ``require_client_cert`` modes.
CLIENT_CERT_MODES: tuple[str, ...] = ("required", "optional")
#: The status whose type/code an in-band stream error carries when ``fail_status`` is not given.
DEFAULT_FAIL_STATUS = 500
#: How stream pauses may vary (``jitter`` of a latency table): not at all, or drawn from a uniform,
#: a normal (never below 0) or a log-normal distribution (mean 1, a long tail of slow pauses).
JITTERS: tuple[str, ...] = ("none", "uniform", "normal", "lognormal")
#: The distribution of a jitter whose latency names none.
DEFAULT_JITTER = "uniform"
#: The most completion tokens ``reply_tokens`` may ask for.
MAX_REPLY_TOKENS = 100_000


@frozen(slots=False)
class ModelLimits(Frozen):
    """What one model allows each caller key: rate limits per minute and the context window."""

    #: Requests each key may send per minute (the bucket refills continuously).
    requests_per_minute: int = 500
    #: Tokens (prompt + max_tokens) each key may use per minute.
    tokens_per_minute: int = 200_000
    #: The most tokens a request's prompt and its max_tokens may add up to.
    context_window: int = 128_000


#: The limits of models ``[models.limits]`` does not name.
FALLBACK_LIMITS = ModelLimits()
#: Each known model's limits: a tier-1 account's rate limits and the model's real context window.
DEFAULT_LIMITS: Mapping[str, ModelLimits] = {
    "gpt-4o-mini": ModelLimits(500, 200_000, 128_000),
    "gpt-4o": ModelLimits(500, 30_000, 128_000),
    "gpt-4": ModelLimits(500, 10_000, 8_192),
    "gpt-4-turbo": ModelLimits(500, 30_000, 128_000),
    "gpt-3.5-turbo": ModelLimits(3_500, 200_000, 16_385),
    "gpt-4.1": ModelLimits(500, 30_000, 1_047_576),
    "gpt-4.1-mini": ModelLimits(500, 200_000, 1_047_576),
    "gpt-4.1-nano": ModelLimits(500, 200_000, 1_047_576),
    "o1": ModelLimits(500, 30_000, 200_000),
    "o3": ModelLimits(500, 30_000, 200_000),
    "o3-mini": ModelLimits(1_000, 100_000, 200_000),
    "o4-mini": ModelLimits(1_000, 100_000, 200_000),
    "text-embedding-3-small": ModelLimits(3_000, 1_000_000, 8_192),
    "text-embedding-3-large": ModelLimits(3_000, 1_000_000, 8_192),
    "text-embedding-ada-002": ModelLimits(3_000, 1_000_000, 8_192),
}


@frozen(slots=False)
class ModelLatency(Frozen):
    """How fast one model answers (a ``[models.latency."ID"]`` table); streams are paced by it and a
    whole answer waits as long as generating it would take."""

    #: Time to first token, in ms (unset: [responses] stream_interval_ms).
    ttft_ms: int | None = None
    #: Inter-token latency: the pause between streamed chunks, in ms (unset: [responses] stream_interval_ms).
    itl_ms: int | None = None
    #: How each pause varies: none, uniform, normal or lognormal.
    jitter: str = DEFAULT_JITTER
    #: The spread of that variation, in percent of the pause (0: none).
    jitter_pct: float = 0.0
    #: Added to each pause for every other stream open at the time, in ms (a server slowing under load).
    load_ms_per_stream: float = 0.0


@frozen(slots=False)
class ServerConfig(Frozen):
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
    #: API keys accepted in ``Authorization: Bearer``; empty: no key is checked.
    api_keys: tuple[str, ...] = ()
    #: Close a keep-alive connection after this many seconds without a request (0: never); a request in flight stops the clock.
    idle_timeout_s: float = 60.0
    #: Close a connection whose request headers are not all in this many seconds after their first byte (0: never).
    header_timeout_s: float = 10.0
    #: On SIGTERM, how long requests in flight may take to finish, in seconds; answers only waiting are ended at once.
    shutdown_grace_s: float = 5.0


@frozen(slots=False)
class TLSConfig(Frozen):
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


@frozen(slots=False)
class ResponsesConfig(Frozen):
    """How completions are answered when no scenario or request says otherwise."""

    #: Delay before every completion, in ms.
    default_delay_ms: int = 0
    #: Percent of completions answered with an error (a 429, 500 or 503).
    error_rate_percent: float = 0.0
    #: Whether "stream": true is served (false: a 400).
    streaming_enabled: bool = True
    #: Pause before each streamed chunk after the first, in ms.
    stream_interval_ms: int = 20
    #: How long fail=timeout holds the connection before its 504 (and fail=stall before it closes), in ms.
    timeout_ms: int = 30_000
    #: The largest delay a request may ask for, in ms.
    max_delay_ms: int = 600_000


@frozen(slots=False)
class ModelsConfig(Frozen):
    """The models ``/v1/models`` lists and completions accept."""

    #: The model ids /v1/models lists and completions accept.
    available: tuple[str, ...] = DEFAULT_MODELS
    #: Rate limits and context window per model (a [models.limits."ID"] table each).
    limits: Mapping[str, ModelLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    #: Time to first token, inter-token latency and jitter per model (a [models.latency."ID"] table
    #: each); a model without one streams at [responses] stream_interval_ms and answers whole at once.
    latency: Mapping[str, ModelLatency] = field(default_factory=dict)

    def limits_of(self, model: str) -> ModelLimits:
        """``model``'s limits (:data:`FALLBACK_LIMITS` for a model ``limits`` does not name)."""
        return self.limits.get(model, FALLBACK_LIMITS)


@frozen(slots=False)
class ObserveConfig(Frozen):
    """The journal and the request log (command line only: ``--journal-size``, ``--request-log*``)."""

    #: Exchanges kept in memory for ``GET /__admin/requests``.
    journal_size: int = 1000
    #: ``--request-log FILE``, or ``None``: no request log.
    request_log: str | None = None
    #: Rotate the request log at this size in bytes (0: never).
    request_log_max_bytes: int = 10 * 1024 * 1024
    #: Rotated request logs kept (``FILE.1`` ... ``FILE.N``).
    request_log_keep: int = 5


@frozen(slots=False)
class VerdictConfig(Frozen):
    """How the retry verdict (``GET /__admin/verdict``, ``mockllm.testing``) groups and judges attempts."""

    #: An attempt without ``x-stainless-retry-count`` is a retry of the previous failed attempt with
    #: the same method, path and body if it starts within this many ms of that attempt's end.
    window_ms: int = 60_000
    #: The attempts one logical request may take before the verdict flags it (the SDK's 2 retries + 1).
    attempt_budget: int = 3


@frozen(slots=False)
class Config(Frozen):
    """Everything the server is configured with."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    #: ``[scenarios.NAME]`` tables: name -> parameters.
    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)
    #: ``[[rules]]`` tables, in order (checked by :func:`mockllm.behaviour.rules.parse_rules`).
    rules: tuple[Mapping[str, Any], ...] = ()
