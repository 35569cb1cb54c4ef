"""
``twist mockllm --print-config``: the whole default configuration as a commented TOML file.

The comments are the ``#:`` lines above each field of :mod:`mockllm.config.model`, read from
its source when asked, so every default and its description stay written once.
"""

from __future__ import annotations

import ast
import json
import inspect
import re
from dataclasses import asdict, fields, is_dataclass
from typing import Any, Mapping

from mockllm.config import model
from mockllm.config.toml import SECTIONS


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines above each field of dataclass ``cls``, joined."""
    source = inspect.getsource(cls)
    lines = source.splitlines()
    docs: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, row = [], node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#:"):
                above.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            docs[node.target.id] = " ".join(above)
    return docs


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """``key`` as TOML writes it: bare if it can be, else quoted."""
    return key if _BARE_KEY.match(key) else toml_value(key)


def toml_value(value: Any) -> str:
    """``value`` (a string, number, boolean, table or sequence of them) written as TOML."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are TOML's basic-string escapes; TOML also refuses a raw DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def render(config: model.Config | None = None) -> str:
    """The TOML text of ``config`` (default: the embedded defaults), each key with its description."""
    config = config or model.Config()
    out = [
        "# mockllm's configuration: every key with its default (twist mockllm --print-config).",
        "# Use it with:  twist mockllm --config FILE   (command-line options override it; see docs/scenarios.md)",
    ]
    for section in SECTIONS:
        values = getattr(config, section)
        docs = field_docs(type(values))
        out += ["", f"[{section}]"]
        tables = []
        for f in fields(values):
            if docs.get(f.name):
                out.append("# " + docs[f.name].replace("``", ""))
            value = getattr(values, f.name)
            if isinstance(value, Mapping):
                tables.append((f"{section}.{f.name}", value))
            else:
                out.append(f"# {f.name} =  (unset)" if value is None else f"{f.name} = {toml_value(value)}")
        for prefix, value in tables:
            out += _subtables(prefix, value)
    out += ["", "# [scenarios.NAME] tables re-parameterise or define scenarios: twist mockllm --list-scenarios"]
    out += ["# [[rules]] tables answer matching requests in a fixed way: see docs/api.md, Response rules"]
    for rule in config.rules:
        out += ["", "[[rules]]", *(f"{toml_key(k)} = {toml_value(v)}" for k, v in rule.items())]
    return "\n".join(out) + "\n"


def _subtables(prefix: str, tables: Mapping[str, Any]) -> list[str]:
    """One ``[prefix."ID"]`` table per entry of ``tables`` (dataclasses or mappings)."""
    out = []
    for name, body in tables.items():
        items = asdict(body) if is_dataclass(body) else dict(body)
        out += ["", f"[{prefix}.{toml_value(name)}]", *(f"{k} = {toml_value(v)}" for k, v in items.items() if v is not None)]
    return out
