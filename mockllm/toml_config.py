"""
The ``--config FILE`` loader: TOML (``tomllib``) into a :class:`~mockllm.config.Config`.

The file uses the gpt-4o-mini plan's keys: ``[server]``, ``[tls]``,
``[responses]``, ``[models]`` and ``[scenarios.NAME]`` tables.  Every other
field of the matching config dataclass is accepted too (checked by its
annotated type).  Anything unknown, of the wrong type or impossible raises
:class:`ConfigError`, whose message names the file, the key and what was
expected.

The *checks* defined here (:func:`whole`, :func:`decimal`, ...) are small
callables ``value -> value`` that raise ``ValueError("<what was expected>")``;
scenario parameters use the same ones.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import fields, replace
from typing import Any, Callable, Mapping

from mockllm.config import Config, ModelsConfig, ResponsesConfig, ServerConfig, TLSConfig
from mockllm.pki import TLS_FAULTS

#: A value check: returns the (possibly normalised) value or raises ``ValueError(expected)``.
Check = Callable[[Any], Any]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


# --- checks -------------------------------------------------------------------


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


def boolean() -> Check:
    """``true`` or ``false``."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value

    return check


def text() -> Check:
    """A non-empty string."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("a non-empty string")
        return value

    return check


def texts() -> Check:
    """A non-empty array of non-empty strings, returned as a tuple."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError("a non-empty array of non-empty strings")
        return tuple(value)

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


def apply(check: Check, value: Any, where: str) -> Any:
    """``check(value)``, re-raising a failure as ``ValueError("<where>: expected ..., got ...")``."""
    try:
        return check(value)
    except ValueError as error:
        raise ValueError(f"{where}: expected {error}, got {value!r}") from None


# --- sections -------------------------------------------------------------------

_PORT = whole(0, 65535)

#: section -> (defaults, checks for the keys that need more than their type).
SECTIONS: dict[str, tuple[object, dict[str, Check]]] = {
    "server": (
        ServerConfig(),
        {"host": text(), "port": _PORT, "http_port": _PORT, "max_connections": whole(1), "backlog": whole(1),
         "max_body_bytes": whole(1)},
    ),
    "tls": (TLSConfig(), {"fault": one_of(TLS_FAULTS)}),
    "responses": (
        ResponsesConfig(),
        {
            "default_delay_ms": milliseconds(),
            "error_rate_percent": decimal(0, 100),
            "stream_interval_ms": milliseconds(),
            "timeout_ms": milliseconds(),
            "max_delay_ms": milliseconds(),
        },
    ),
    "models": (ModelsConfig(), {"available": texts()}),
}

_BY_TYPE: dict[object, Check] = {bool: boolean(), int: whole(None), float: decimal(None), str: text()}


def _check_for_annotation(annotation: object) -> Check | None:
    """The check implied by a dataclass field's type (``X | None`` checks as ``X``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        real = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = real[0] if len(real) == 1 else None
    if typing.get_origin(annotation) is tuple:
        return texts()
    return _BY_TYPE.get(annotation)


def section_checks(section: str) -> dict[str, Check]:
    """Every key ``[section]`` accepts, with its check."""
    defaults, explicit = SECTIONS[section]
    hints = typing.get_type_hints(type(defaults))
    checks = {}
    for f in fields(defaults):
        check = explicit.get(f.name) or _check_for_annotation(hints[f.name])
        checks[f.name] = check or (lambda value: value)
    return checks


def _parse_section(section: str, table: Any) -> object:
    """The dataclass for ``[section]``: its defaults with the table's checked keys over them."""
    defaults, _ = SECTIONS[section]
    if not isinstance(table, dict):
        raise ValueError(f"[{section}]: expected a table, got {table!r}")
    checks = section_checks(section)
    values = {}
    for key, value in table.items():
        if key not in checks:
            raise ValueError(f"[{section}] {key}: unknown key; expected one of {', '.join(checks)}")
        values[key] = apply(checks[key], value, f"[{section}] {key}")
    return replace(defaults, **values)


def _parse_scenarios(table: Any) -> dict[str, dict[str, object]]:
    """``[scenarios.NAME]`` tables, each checked to be a table (their keys are checked by the scenario layer)."""
    if not isinstance(table, dict):
        raise ValueError(f"[scenarios]: expected tables such as [scenarios.fast], got {table!r}")
    parsed = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            raise ValueError(f"[scenarios.{name}]: expected a table of scenario settings, got {body!r}")
        parsed[name] = dict(body)
    return parsed


def parse_config(document: Mapping[str, Any], base: Config | None = None) -> Config:
    """A :class:`Config` from a parsed TOML document; ``ValueError`` names the bad key."""
    config = base or Config()
    changes: dict[str, object] = {}
    for section, table in document.items():
        if section == "scenarios":
            changes["scenarios"] = _parse_scenarios(table)
        elif section in SECTIONS:
            changes[section] = _parse_section(section, table)
        else:
            known = ", ".join([*SECTIONS, "scenarios"])
            raise ValueError(f"[{section}]: unknown section; expected one of {known}")
    return replace(config, **changes)


def load_config(path: str) -> Config:
    """Read and check the TOML file at ``path``; :class:`ConfigError` says what is wrong with it."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_config(document)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None
