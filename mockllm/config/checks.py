"""
Value checks: one family used by the command line, the TOML file, scenario parameters and
request controls.

A *check* is a small callable ``value -> value`` that raises ``ValueError("<what was
expected>")``; :func:`apply` turns that into a message naming where the value came from.
:func:`ascii_whole` is the one parser of whole numbers written as text (query strings,
headers, journal filters, options).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

from mockllm.config.model import JITTERS

#: A value check: returns the (possibly normalised) value or raises ``ValueError(expected)``.
Check = Callable[[Any], Any]


def ascii_whole(text: str, max_digits: int) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits, else ``None``.

    ``str.isdigit`` alone also accepts characters such as ``"²"`` that ``int()`` refuses,
    and ``int()`` refuses (or is slow on) thousands of digits.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def _bounds_text(what: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{what} >= {minimum}"
    if maximum is not None:
        return f"{what} <= {maximum}"
    return what


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_bounds(value: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def whole(minimum: int | None = 0, maximum: int | None = None) -> Check:
    """An integer (not a boolean) within ``[minimum, maximum]``."""
    expected = _bounds_text("a whole number", minimum, maximum)

    def check(value: Any) -> int:
        if not _is_int(value) or not _in_bounds(value, minimum, maximum):
            raise ValueError(expected)
        return value

    return check


#: The longest duration any millisecond setting may ask for: one hour.  Delays, stream
#: pauses and timeouts beyond it are refused when checked, so the arithmetic on them
#: (seconds as floats, timers on the reactor) stays in range.
MAX_MS = 3_600_000


def milliseconds() -> Check:
    """A duration in whole milliseconds, from 0 to :data:`MAX_MS` (one hour)."""
    return whole(0, MAX_MS)


def decimal(minimum: float | None = 0, maximum: float | None = None) -> Check:
    """A number (integer or float) within ``[minimum, maximum]``, returned as a float."""
    expected = _bounds_text("a number", minimum, maximum)

    def check(value: Any) -> float:
        if not (_is_int(value) or isinstance(value, float)) or not _in_bounds(value, minimum, maximum):
            raise ValueError(expected)
        return float(value)

    return check


#: The longest duration any seconds setting may ask for (the same hour as :data:`MAX_MS`).
MAX_SECONDS = MAX_MS // 1000


def seconds() -> Check:
    """A duration in seconds (a whole or decimal number), from 0 to :data:`MAX_SECONDS`, as a float."""
    return decimal(0, MAX_SECONDS)


def boolean() -> Check:
    """``true`` or ``false``."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value

    return check


def text(allow_empty: bool = False) -> Check:
    """A non-empty string (an empty one too if ``allow_empty``)."""
    expected = "a string" if allow_empty else "a non-empty string"

    def check(value: Any) -> str:
        if not isinstance(value, str) or not (value or allow_empty):
            raise ValueError(expected)
        return value

    return check


def texts(allow_empty: bool = False) -> Check:
    """A non-empty array of non-empty strings (an empty one too if ``allow_empty``), returned as a tuple."""
    expected = "an array of non-empty strings" if allow_empty else "a non-empty array of non-empty strings"

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not (value or allow_empty) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(expected)
        return tuple(value)

    return check


def pattern() -> Check:
    """A regular expression (Python's ``re`` syntax), returned compiled."""

    def check(value: Any) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise ValueError("a regular expression (a string)")
        try:
            return re.compile(value)
        except re.error as error:
            raise ValueError(f"a valid regular expression ({error})") from None

    return check


def paths() -> Check:
    """A file path, or a non-empty array of them: returned as a tuple of strings either way."""
    several = texts()

    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str) and value:
            return (value,)
        try:
            return several(value)
        except ValueError:
            raise ValueError("a file path, or an array of file paths") from None

    return check


def statuses() -> Check:
    """A non-empty array of HTTP error statuses (400-599), returned as a tuple."""

    def check(value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) and 400 <= v <= 599 for v in value):
            raise ValueError("a non-empty array of HTTP error statuses (400 to 599)")
        return tuple(value)

    return check


def one_of(choices: tuple[str, ...]) -> Check:
    """One of the strings ``choices``."""
    expected = f"one of {', '.join(choices)}"

    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(expected)
        return value

    return check


def optional(check: Check, meaning: str) -> Check:
    """``check``, or ``None`` (which means ``meaning``)."""

    def check_optional(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as error:
            raise ValueError(f"{error}, or null ({meaning})") from None

    return check_optional


def table(checks: Mapping[str, Check]) -> Check:
    """A table (a dict) of some of the keys of ``checks``, each value checked; returned as a dict."""
    expected = f"a table of {', '.join(checks)}"

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not set(value) <= set(checks):
            raise ValueError(expected)
        checked = {}
        for key, item in value.items():
            try:
                checked[key] = checks[key](item)
            except ValueError as error:
                raise ValueError(f"{expected} with {key} {error}") from None
        return checked

    return check


#: The keys of a latency table (``[models.latency."ID"]``, a scenario's ``latency``) and their checks.
LATENCY_CHECKS: Mapping[str, Check] = {
    "ttft_ms": milliseconds(),
    "itl_ms": milliseconds(),
    "jitter": one_of(JITTERS),
    "jitter_pct": decimal(0, 100),
    "load_ms_per_stream": decimal(0, MAX_MS),
}


def latency() -> Check:
    """A latency table: some of :data:`LATENCY_CHECKS`' keys, each checked."""
    return table(LATENCY_CHECKS)


def written(value: Any) -> str:
    """``value`` as a TOML or JSON file writes it (``true``, ``"8443"``, ``[1, 2]``), for messages."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def apply(check: Check, value: Any, where: str) -> Any:
    """``check(value)``, re-raising a failure as ``ValueError("<where>: expected ..., got ...")``."""
    try:
        return check(value)
    except ValueError as error:
        raise ValueError(f"{where}: expected {error}, got {written(value)}") from None


