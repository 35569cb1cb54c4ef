"""
Request controls: the seed's failure controls, read from the query string or ``X-Mock-*`` headers.

:func:`parse_controls` makes the request's own plan layer (``delay``, ``drip_ms``, ``fail``,
``fail_chunk``, ``fail_mode``, ``fail_status``, the retry hints ``retry_after``,
``should_retry``, ``retry_after_format``, the latency ``ttft_ms`` and ``itl_ms``, and
``reply_tokens``) from any lookup of control names, so response rules
get every fault from it too; :class:`ControlLookup` finds a control by name, the query
string first.  Every problem raises a 400 :class:`~mockllm.behaviour.errors.APIError` whose
``param`` names the control.  Controls are read from the query string only, never from a
form-encoded body.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs

from mockllm.behaviour.errors import invalid_request
from mockllm.behaviour.plan import (
    NO_FAULT,
    NO_OPINION,
    RETRY_AFTER_FORMATS,
    ChunkFault,
    CloseFault,
    ErrorEventFault,
    Fault,
    MalformedFault,
    PlanPart,
    ResetFault,
    StallFault,
    StatusFault,
    TimeoutFault,
    TimingPart,
    latency_timing,
)
from mockllm.config.checks import ascii_whole
from mockllm.config.model import DEFAULT_FAIL_STATUS, MAX_REPLY_TOKENS

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

    def __bool__(self) -> bool:
        """Whether the request has a query string or an ``X-Mock-*`` header (else no control is given)."""
        return bool(self._query or self._headers)

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
    return _whole(name, text, cap, "milliseconds", "ms")


def _whole(name: str, text: str, cap: int, units: str, unit: str) -> int:
    """``text`` as a whole number of ``units`` from 0 to ``cap``, or a 400 naming ``name``."""
    text = text.strip()
    value = ascii_whole(text.removeprefix("-"), 15)
    if value is None:
        raise invalid_request(
            f"Invalid '{name}': expected a whole number of {units}, got {text!r}.", name, "invalid_value"
        )
    if text.startswith("-") and value:
        raise invalid_request(f"Invalid '{name}': must not be negative, got -{value}.", name, "invalid_value")
    if value > cap:
        raise invalid_request(
            f"Invalid '{name}': {value} {unit} is above this server's cap of {cap} {unit}.", name, "invalid_value"
        )
    return value


#: ``fail=`` words and the fault each makes, before any byte (``timeout_s`` is ``--timeout-ms``).
_FAIL_WORDS: dict[str, Callable[[float], Fault]] = {
    "timeout": TimeoutFault,
    "none": lambda timeout_s: NO_FAULT,
    "reset": lambda timeout_s: ResetFault(),
    "close": lambda timeout_s: CloseFault(),
    "stall": StallFault,
    "malformed": lambda timeout_s: MalformedFault(),
}

#: ``fail_mode=`` values: what happens at stream event ``at`` (``fail_chunk``).
_FAIL_MODES: dict[str, Callable[[int, int, float], Fault]] = {
    "malformed": lambda at, status, timeout_s: ChunkFault(at),
    "error": lambda at, status, timeout_s: ErrorEventFault(at, status),
    "close": lambda at, status, timeout_s: CloseFault(at),
    "reset": lambda at, status, timeout_s: ResetFault(at),
    "stall": lambda at, status, timeout_s: StallFault(timeout_s, at),
}


def _status(text: str) -> int | None:
    """``text`` as an HTTP error status 400-599, or ``None``."""
    status = ascii_whole(text, 3)
    return status if status is not None and 400 <= status <= 599 else None


def parse_fail(text: str, timeout_s: float) -> Fault:
    """Turn a ``fail`` value into a fault: an HTTP status 400-599 or one of :data:`_FAIL_WORDS`."""
    lowered = text.strip().lower()
    if lowered in _FAIL_WORDS:
        return _FAIL_WORDS[lowered](timeout_s)
    status = _status(lowered)
    if status is not None:
        return StatusFault(status)
    words = ", ".join(f"'{word}'" for word in _FAIL_WORDS)
    raise invalid_request(
        f"Unknown fail type: {text!r}. Use an HTTP status from 400 to 599 or one of {words}.",
        "fail",
        "invalid_value",
    )


def _choice(name: str, text: str, choices: Iterable[str]) -> str:
    """``text`` (case-insensitive) if it is one of ``choices``, or a 400 naming ``name``."""
    lowered = text.strip().lower()
    if lowered not in choices:
        listed = ", ".join(f"'{choice}'" for choice in choices)
        raise invalid_request(f"Invalid '{name}': expected one of {listed}, got {text!r}.", name, "invalid_value")
    return lowered


def _parse_fail_status(text: str | None) -> int:
    """``fail_status``: the status of an in-band stream error (default :data:`DEFAULT_FAIL_STATUS`)."""
    if text is None:
        return DEFAULT_FAIL_STATUS
    status = _status(text.strip())
    if status is None:
        raise invalid_request(
            f"Invalid 'fail_status': expected an HTTP status from 400 to 599, got {text!r}.",
            "fail_status",
            "invalid_value",
        )
    return status


def _parse_fail_chunk(text: str) -> int:
    chunk = ascii_whole(text.strip(), 9)
    if chunk is None or chunk < 1:
        raise invalid_request(
            f"Invalid 'fail_chunk': expected an event number of 1 or more, got {text!r}.",
            "fail_chunk",
            "invalid_value",
        )
    return chunk


def _chunk_fault(lookup: Lookup, timeout_s: float) -> Fault | None:
    """The fault at stream event ``fail_chunk``, of kind ``fail_mode`` (checked even without ``fail_chunk``)."""
    chunk_text, mode_text = lookup("fail_chunk"), lookup("fail_mode")
    mode = "malformed" if mode_text is None else _choice("fail_mode", mode_text, _FAIL_MODES)
    status = _parse_fail_status(lookup("fail_status"))
    if chunk_text is None:
        return None
    return _FAIL_MODES[mode](_parse_fail_chunk(chunk_text), status, timeout_s)


def _retry_hints(lookup: Lookup, max_delay_ms: int) -> dict[str, Any]:
    """``retry_after``, ``should_retry`` and ``retry_after_format``, as :class:`StatusFault` fields."""
    hints: dict[str, Any] = {}
    retry_text, should_text, format_text = lookup("retry_after"), lookup("should_retry"), lookup("retry_after_format")
    if retry_text is not None:
        hints["retry_after"] = _whole_ms("retry_after", retry_text, max_delay_ms) / 1000
    if should_text is not None:
        hints["should_retry"] = _choice("should_retry", should_text, ("true", "false")) == "true"
    if format_text is not None:
        hints["retry_after_format"] = _choice("retry_after_format", format_text, RETRY_AFTER_FORMATS)
    return hints


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
    """The fault the request asks for itself: ``fail`` (with its retry hints), else ``fail_chunk``."""
    fail_text = lookup("fail")
    fault = None if fail_text is None else parse_fail(fail_text, timeout_s)
    hints = _retry_hints(lookup, max_delay_ms)
    chunk_fault = _chunk_fault(lookup, timeout_s)
    if chunk_fault is not None and (fault is None or fault is NO_FAULT):
        fault = chunk_fault  # fail=none masks the scenario's fault, not this one
    if hints and isinstance(fault, StatusFault):
        fault = replace(fault, **hints)
    return fault


def _timing(lookup: Lookup, max_delay_ms: int) -> TimingPart | None:
    """``ttft_ms`` and ``itl_ms``: the stream's time to first token and inter-token pause (a whole
    answer then waits as long as streaming would take); ``None`` when neither is given."""
    ttft_text, itl_text = lookup("ttft_ms"), lookup("itl_ms")
    if ttft_text is None and itl_text is None:
        return None
    ttft = None if ttft_text is None else _whole_ms("ttft_ms", ttft_text, max_delay_ms)
    itl = None if itl_text is None else _whole_ms("itl_ms", itl_text, max_delay_ms)
    return latency_timing({"ttft_ms": ttft, "itl_ms": itl})


def _reply_tokens(lookup: Lookup) -> int | None:
    """``reply_tokens``: how many completion tokens each text choice has."""
    text = lookup("reply_tokens")
    return None if text is None else _whole("reply_tokens", text, MAX_REPLY_TOKENS, "tokens", "tokens")


def parse_controls(lookup: Lookup, max_delay_ms: int, timeout_s: float) -> PlanPart:
    """The request's own plan layer from ``delay``, ``drip_ms``, ``fail`` and the fault controls
    (``fail_chunk``, ``fail_mode``, ``fail_status``, ``retry_after``, ``should_retry``,
    ``retry_after_format``), the latency (``ttft_ms``, ``itl_ms``) and ``reply_tokens``; see
    ``docs/api.md``.  A :class:`ControlLookup` that finds no control at all makes no opinion at once."""
    if not lookup:
        return NO_OPINION
    delay_text, drip_text = lookup("delay"), lookup("drip_ms")
    delay = None if delay_text is None else _whole_ms("delay", delay_text, max_delay_ms) / 1000
    drip = None if drip_text is None else _whole_ms("drip_ms", drip_text, max_delay_ms) / 1000
    return PlanPart(
        delay=delay,
        fault=_request_fault(lookup, max_delay_ms, timeout_s),
        timing=_timing(lookup, max_delay_ms),
        drip=drip,
        reply_tokens=_reply_tokens(lookup),
    )
