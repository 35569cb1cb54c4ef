"""
Request controls: the seed's failure controls, read from the query string or ``X-Mock-*`` headers.

:func:`parse_controls` makes the request's own plan layer (``delay``, ``fail``,
``fail_chunk``, ``retry_after``); :class:`ControlLookup` finds a control by name, the query
string first.  Every problem raises a 400 :class:`~mockllm.behaviour.errors.APIError` whose
``param`` names the control.  Controls are read from the query string only, never from a
form-encoded body.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from mockllm.behaviour.errors import invalid_request
from mockllm.behaviour.plan import NO_FAULT, ChunkFault, Fault, PlanPart, StatusFault, TimeoutFault
from mockllm.config.checks import ascii_whole

Lookup = Callable[[str], "str | None"]


def query_args(uri: bytes) -> dict[str, list[str]]:
    """The query string of ``uri`` only (never a form-encoded body, which ``request.args`` mixes in)."""
    query = uri.partition(b"?")[2]
    if not query:
        return {}
    return parse_qs(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")


class ControlLookup:
    """Finds a control by name: the query string first, then ``X-Mock-<Name>``.

    The ``X-Mock-*`` headers are collected in one pass over the request's headers.
    """

    def __init__(self, query: Mapping[str, list[str]], headers: Any) -> None:
        self._query = query
        found = self._headers = {}
        for raw_name, values in headers.getAllRawHeaders():
            name = raw_name.lower()
            if name.startswith(b"x-mock-"):
                found[name[7:].decode("latin-1").replace("-", "_")] = values[-1].decode("utf-8", "replace")

    def __call__(self, name: str) -> str | None:
        """The control ``name``'s value (its last occurrence), or ``None``."""
        values = self._query.get(name)
        if values:
            return values[-1]
        return self._headers.get(name)

    def header(self, name: str) -> str | None:
        """``X-Mock-<Name>`` only (the caller's key and scenario are never query parameters)."""
        return self._headers.get(name)


def _whole_ms(name: str, text: str, cap: int) -> int:
    """``text`` as whole milliseconds from 0 to ``cap``, or a 400 naming ``name``."""
    text = text.strip()
    value = ascii_whole(text.removeprefix("-"), 15)
    if value is None:
        raise invalid_request(
            f"Invalid '{name}': expected a whole number of milliseconds, got {text!r}.", name, "invalid_value"
        )
    if text.startswith("-") and value:
        raise invalid_request(f"Invalid '{name}': must not be negative, got -{value}.", name, "invalid_value")
    if value > cap:
        raise invalid_request(
            f"Invalid '{name}': {value} ms is above this server's cap of {cap} ms.", name, "invalid_value"
        )
    return value


def parse_fail(text: str, timeout_s: float) -> Fault:
    """Turn a ``fail`` value into a fault: an HTTP status 400-599, ``timeout`` or ``none``."""
    lowered = text.strip().lower()
    if lowered == "timeout":
        return TimeoutFault(timeout_s)
    if lowered == "none":
        return NO_FAULT
    status = ascii_whole(lowered, 3)
    if status is not None and 400 <= status <= 599:
        return StatusFault(status)
    raise invalid_request(
        f"Unknown fail type: {text!r}. Use an HTTP status from 400 to 599, 'timeout' or 'none'.",
        "fail",
        "invalid_value",
    )


def _parse_fail_chunk(text: str) -> ChunkFault:
    chunk = ascii_whole(text.strip(), 9)
    if chunk is None or chunk < 1:
        raise invalid_request(
            f"Invalid 'fail_chunk': expected an event number of 1 or more, got {text!r}.",
            "fail_chunk",
            "invalid_value",
        )
    return ChunkFault(chunk)


def parse_stream_flag(text: str | None) -> bool | None:
    """The query's ``stream=true|false`` (also ``1``/``0``); ``None`` when absent."""
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid_request(f"Invalid 'stream': expected true or false, got {text!r}.", "stream", "invalid_value")


def _request_fault(lookup: Lookup, max_delay_ms: int, timeout_s: float) -> Fault | None:
    """The fault the request asks for itself: ``fail`` (with ``retry_after``), else ``fail_chunk``."""
    fail_text, chunk_text, retry_text = lookup("fail"), lookup("fail_chunk"), lookup("retry_after")
    fault = None if fail_text is None else parse_fail(fail_text, timeout_s)
    retry_ms = None if retry_text is None else _whole_ms("retry_after", retry_text, max_delay_ms)
    if chunk_text is not None:
        chunk_fault = _parse_fail_chunk(chunk_text)
        if fault is None or fault is NO_FAULT:  # fail=none masks the scenario's fault, not this one
            fault = chunk_fault
    if retry_ms is not None and isinstance(fault, StatusFault):
        fault = replace(fault, retry_after=retry_ms / 1000)
    return fault


def parse_controls(lookup: Lookup, max_delay_ms: int, timeout_s: float) -> PlanPart:
    """The request's own plan layer from ``delay``, ``fail``, ``fail_chunk`` and ``retry_after``."""
    delay_text = lookup("delay")
    delay = None if delay_text is None else _whole_ms("delay", delay_text, max_delay_ms) / 1000
    return PlanPart(delay=delay, fault=_request_fault(lookup, max_delay_ms, timeout_s))
