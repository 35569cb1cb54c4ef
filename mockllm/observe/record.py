"""
One finished :class:`~mockllm.observe.exchange.Exchange` as a JSON-able record.

:func:`exchange_record` is the single description of an exchange that the
request log (:mod:`mockllm.observe.requestlog`) writes and the journal
(:mod:`mockllm.observe.journal`) shows; :class:`Recorder` renders it once per
exchange and hands it to each sink.  It is made in two steps: :func:`kept`, a
:class:`Kept` snapshot with the bodies capped (what the journal keeps: a tuple of
atoms, which the cyclic garbage collector stops tracking, so a full journal adds
nothing to its walks), and :func:`record_of`, the dict, with secret headers
redacted.  No sink can leak or bloat.  The fields are documented in ``docs/api.md``
("Admin API and metrics").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterable, NamedTuple

from mockllm.observe.exchange import Exchange

#: What a redacted header value (or the credential part of one) is replaced with.
REDACTED = "[REDACTED]"
#: Lower-case names of the headers whose values never reach a record.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
#: Default cap, in bytes, on each body kept in a record.
BODY_CAP = 64 * 1024

Record = dict[str, Any]


def redact_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as ``{lower-case name: value}`` (repeats joined by ``", "``), secrets redacted."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in SECRET_HEADERS:
            value = _redacted(key, value)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _redacted(name: str, value: str) -> str:
    """``REDACTED``, keeping an authorization header's scheme (``Bearer [REDACTED]``)."""
    if name.endswith("authorization"):
        scheme, space, _ = value.partition(" ")
        if space:
            return f"{scheme} {REDACTED}"
    return REDACTED


def capped_body(raw: bytes | None, size: int) -> dict[str, Any]:
    """``raw`` (already capped) as text (UTF-8), the body's full ``size`` and whether it was cut."""
    if raw is None:
        return {"body": None, "body_bytes": 0, "body_truncated": False}
    return {"body": raw.decode("utf-8", "replace"), "body_bytes": size, "body_truncated": size > len(raw)}


class Kept(NamedTuple):
    """What a record is made from: an exchange's finished state, bodies capped, atoms only."""

    started: float
    request_id: str
    client: str
    identity: dict[str, Any] | None
    key: str
    method: str
    path: str
    query: str
    scenario: str | None
    fault: str | None
    fault_at: int | None
    error: str | None
    status: int | None
    outcome: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    body_bytes: int
    response_body: bytes | None
    response_bytes: int
    stream: bool
    events_sent: int
    completion_tokens: int
    retry_headers: tuple[tuple[str, str], ...]
    first_byte_at: float | None
    first_token_at: float | None
    finished_at: float | None


def kept(ex: Exchange, body_cap: int = BODY_CAP) -> Kept:
    """The :class:`Kept` snapshot of a finished exchange, each body cut to ``body_cap`` bytes."""
    return Kept._make(kept_tuple(ex, body_cap))


def kept_tuple(ex: Exchange, body_cap: int = BODY_CAP) -> tuple:
    """:func:`kept` as a plain tuple, in :class:`Kept`'s order (what the journal stores: the collector
    stops tracking an exact tuple of atoms, not a named one)."""
    body, response = ex.body, ex.response_body
    return (
        ex.started, ex.request_id, ex.client, ex.identity, ex.key, ex.method, ex.path, ex.query,
        ex.scenario, ex.fault, ex.fault_at, ex.error, ex.status, ex.outcome, tuple(ex.headers),
        None if body is None else body[:body_cap], 0 if body is None else len(body),
        None if response is None else response[:body_cap], 0 if response is None else len(response),
        ex.stream, ex.events_sent, ex.completion_tokens, ex.retry_headers,
        ex.first_byte_at, ex.first_token_at, ex.finished_at,
    )


def elapsed_ms(ex: Exchange | Kept, at: float | None) -> float | None:
    """Milliseconds from the exchange's start to ``at`` (``None`` if ``at`` is)."""
    if at is None:
        return None
    return round((at - ex.started) * 1000, 3)


def iso_time(seconds: float) -> str:
    """``seconds`` since the epoch as RFC 3339 UTC with milliseconds (``...Z``)."""
    stamp = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def exchange_record(ex: Exchange, body_cap: int = BODY_CAP) -> Record:
    """The record of a finished exchange (see ``docs/api.md`` for every field)."""
    return record_of(kept(ex, body_cap))


def record_of(ex: Kept) -> Record:
    """The record of a :class:`Kept` exchange."""
    return {
        "time": iso_time(ex.started),
        "timestamp": ex.started,
        "request_id": ex.request_id,
        "client": ex.client,
        "client_cert": ex.identity,
        "key": ex.key,
        "method": ex.method,
        "path": ex.path,
        "query": ex.query,
        "scenario": ex.scenario,
        "fault": ex.fault,
        "fault_at": ex.fault_at,
        "error": ex.error,
        "status": ex.status,
        "outcome": ex.outcome,
        "request": {"headers": redact_headers(ex.headers), **capped_body(ex.body, ex.body_bytes)},
        "response": {
            **capped_body(ex.response_body, ex.response_bytes),
            "stream": ex.stream,
            "events_sent": ex.events_sent,
            "completion_tokens": ex.completion_tokens,
            "retry_headers": dict(ex.retry_headers),
        },
        "timings": {
            "ttfb_ms": elapsed_ms(ex, ex.first_byte_at),
            "ttft_ms": elapsed_ms(ex, ex.first_token_at),
            "total_ms": elapsed_ms(ex, ex.finished_at),
        },
    }


class Recorder:
    """An exchange observer: renders each finished exchange once and gives the record to every sink."""

    def __init__(self, sinks: Iterable[Callable[[Record], None]], body_cap: int = BODY_CAP) -> None:
        self.sinks = list(sinks)
        self.body_cap = body_cap

    def exchange_started(self, exchange: Exchange) -> None:
        """Nothing to record until the exchange ends."""

    def exchange_finished(self, exchange: Exchange) -> None:
        """Render the record and pass it on."""
        record = exchange_record(exchange, self.body_cap)
        for sink in self.sinks:
            sink(record)
