"""
The ``--config FILE`` loader: TOML (``tomllib``) into a :class:`~mockllm.config.Config`.

The file uses the gpt-4o-mini plan's keys: ``[server]``, ``[tls]``,
``[responses]``, ``[models]`` (with ``[models.limits."ID"]`` and ``[models.latency."ID"]``),
``[scenarios.NAME]`` tables and ``[[rules]]``.  Every other
field of the matching config dataclass is accepted too (checked by its
annotated type, with the checks of :mod:`mockllm.config.checks`).  Anything
unknown, of the wrong type or impossible raises :class:`ConfigError`, whose
message names the file, the key and what was expected.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import fields, replace
from typing import Any, Callable, Mapping

from mockllm.config.checks import (
    LATENCY_CHECKS,
    Check,
    apply,
    boolean,
    decimal,
    milliseconds,
    one_of,
    paths,
    seconds,
    text,
    texts,
    whole,
)
from mockllm.config.model import (
    FALLBACK_LIMITS,
    TLS_FAULTS,
    Config,
    ModelLatency,
    ModelLimits,
    ModelsConfig,
    ResponsesConfig,
    ServerConfig,
    TLSConfig,
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


# --- sections -------------------------------------------------------------------

_PORT = whole(0, 65535)

#: section -> (defaults, checks for the keys that need more than their type).
SECTIONS: dict[str, tuple[object, dict[str, Check]]] = {
    "server": (
        ServerConfig(),
        {"host": text(), "port": _PORT, "http_port": _PORT, "max_connections": whole(1), "backlog": whole(1),
 "max_body_bytes": whole(1), "api_keys": texts(allow_empty=True), "idle_timeout_s": seconds(),
         "header_timeout_s": seconds(), "shutdown_grace_s": seconds()},
    ),
    "tls": (TLSConfig(), {"fault": one_of(TLS_FAULTS), "ca_cert_path": paths()}),
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

#: The largest rate limit per minute and context window a ``[models.limits."ID"]`` table may give.
MAX_LIMIT = 10**12
#: The keys of a ``[models.limits."ID"]`` table.
LIMIT_CHECKS: dict[str, Check] = {name: whole(1, MAX_LIMIT) for name in ("requests_per_minute", "tokens_per_minute", "context_window")}

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
    tables = {"limits": lambda value: _parse_limits(value, defaults.limits), "latency": _parse_latency}
    return replace(defaults, **_checked(f"[{section}]", table, section_checks(section), tables if section == "models" else None))


def _checked(
    where: str, table: Mapping[str, Any], checks: Mapping[str, Check], parsers: Mapping[str, Callable[[Any], Any]] | None = None
) -> dict[str, Any]:
    """``table``'s keys, each one ``checks`` knows, checked by it (or parsed by ``parsers[key]``, a table of tables)."""
    values = {}
    for key, value in table.items():
        if key not in checks:
            raise ValueError(f"{where} {key}: unknown key; expected one of {', '.join(checks)}")
        parse = parsers.get(key) if parsers else None
        values[key] = parse(value) if parse is not None else apply(checks[key], value, f"{where} {key}")
    return values


def _parse_limits(tables: Any, defaults: Mapping[str, ModelLimits]) -> dict[str, ModelLimits]:
    """``[models.limits."ID"]`` tables over the default limits: each key given replaces that model's."""
    limits = dict(defaults)
    for model, values in _model_tables("limits", tables, LIMIT_CHECKS):
        limits[model] = replace(limits.get(model, FALLBACK_LIMITS), **values)
    return limits


def _parse_latency(tables: Any) -> dict[str, ModelLatency]:
    """``[models.latency."ID"]`` tables: each model's latency, its keys over :class:`ModelLatency`'s defaults."""
    return {model: ModelLatency(**values) for model, values in _model_tables("latency", tables, LATENCY_CHECKS)}


def _model_tables(name: str, tables: Any, checks: Mapping[str, Check]) -> list[tuple[str, dict[str, Any]]]:
    """The ``[models.NAME."ID"]`` tables: each model and its checked keys."""
    if not isinstance(tables, dict):
        raise ValueError(f'[models.{name}]: expected tables such as [models.{name}."gpt-4o"], got {tables!r}')
    parsed = []
    for model, body in tables.items():
        where = f'[models.{name}."{model}"]'
        if not isinstance(body, dict):
            raise ValueError(f"{where}: expected a table of {', '.join(checks)}, got {body!r}")
        parsed.append((model, _checked(where, body, checks)))
    return parsed


def _parse_rules(tables: Any) -> tuple[dict[str, Any], ...]:
    """``[[rules]]``: an array of tables, kept as given (their keys are checked by the rules layer)."""
    if not isinstance(tables, list) or not all(isinstance(rule, dict) for rule in tables):
        raise ValueError(f"[[rules]]: expected an array of tables ([[rules]] sections), got {tables!r}")
    return tuple(dict(rule) for rule in tables)


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
        elif section == "rules":
            changes["rules"] = _parse_rules(table)
        elif section in SECTIONS:
            changes[section] = _parse_section(section, table)
        else:
            known = ", ".join([*SECTIONS, "scenarios", "rules"])
            raise ValueError(f"[{section}]: unknown section; expected one of {known}")
    return replace(config, **changes)


def load_config(path: str) -> Config:
    """Read and check the TOML file at ``path``; :class:`ConfigError` says what is wrong with it."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration file: {error.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(f"{path}: starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; save it as UTF-8 without one")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line} has the byte 0x{raw[error.start]:02x}); TOML files are UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_config(document)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None
