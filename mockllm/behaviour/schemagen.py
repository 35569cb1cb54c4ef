"""
Instances of a JSON Schema, drawn with a caller's ``random.Random``: tool-call ``arguments`` and
``json_schema`` output.

:func:`instance` covers what function ``parameters`` and structured-output schemas use (the
OpenAI strict subset and more): ``type`` (one or several), ``enum``, ``const``, ``$ref`` into
the same document (``$defs``/``definitions``, recursion cut off by depth), ``anyOf``/``oneOf``,
``allOf`` (merged), objects (``properties``, ``required``, ``minProperties``; no keys beyond the
declared ones unless more are needed), arrays (``items``, ``prefixItems``, ``minItems``,
``maxItems``, ``uniqueItems``), strings (``minLength``, ``maxLength``, ``pattern`` through
``rstr``, the common ``format`` values), numbers (bounds, exclusive bounds, ``multipleOf``),
booleans and null.  The same generator and schema give the same instance.

The libraries were judged first: ``hypothesis-jsonschema`` (0.23.1) fails on object schemas
with the installed Hypothesis and is not meant to run outside tests; ``jsf`` draws from the
process-wide ``random`` module and an unseeded Faker, so it cannot be seeded per request.
"""

from __future__ import annotations

import random
import string
from typing import Any, Mapping

import rstr

#: Below this depth every optional part may appear; past it only what the schema requires.
MAX_DEPTH = 4
#: A schema that recurses without any way out gets a plain string this deep down.
HARD_DEPTH = 32
#: Words strings are made of.
WORDS = (
    "alpha", "bravo", "mock", "value", "sample", "paris", "london", "blue", "green", "seven",
    "north", "river", "stone", "cloud", "token", "answer", "report", "item", "order", "city",
)
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def instance(schema: Any, rng: random.Random) -> Any:
    """A value valid against ``schema`` (a JSON Schema), drawn with ``rng``."""
    return _Draw(schema, rng).value(schema, 0)


class _Draw:
    """One draw: the root document (for ``$ref``) and the generator."""

    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        """A value valid against ``schema`` at nesting ``depth``."""
        if schema is True or not isinstance(schema, Mapping) or depth > HARD_DEPTH:
            return self.rng.choice(WORDS)
        schema = self.merged(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            return self.value({**_without(schema, "anyOf", "oneOf"), **self.merged(self.branch(branches, depth))}, depth)
        return getattr(self, "_" + self.type_of(schema, depth))(schema, depth)

    def merged(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """``schema`` with its ``$ref`` resolved and its ``allOf`` folded in."""
        while "$ref" in schema:
            schema = {**self.resolve(schema["$ref"]), **_without(schema, "$ref")}
        for part in schema.get("allOf", ()):
            schema = _merge(_without(schema, "allOf"), self.merged(part))
        return schema

    def resolve(self, ref: str) -> Mapping[str, Any]:
        """The schema a local ``$ref`` (``#/...``) points at."""
        node: Any = self.root
        for part in ref.lstrip("#").split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def branch(self, branches: list, depth: int) -> Any:
        """One of ``anyOf``/``oneOf``'s branches: past :data:`MAX_DEPTH`, the null one if any."""
        if depth >= MAX_DEPTH:
            for candidate in branches:
                if isinstance(candidate, Mapping) and candidate.get("type") == "null":
                    return candidate
        return self.rng.choice(branches)

    def type_of(self, schema: Mapping[str, Any], depth: int) -> str:
        """The JSON type to draw: the schema's (one of them), else what its keywords imply."""
        declared = schema.get("type")
        if isinstance(declared, list):
            options = [t for t in declared if t in _TYPES] or ["null"]
            if depth >= MAX_DEPTH and "null" in options:
                return "null"
            return self.rng.choice(options)
        if declared in _TYPES:
            return declared
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "object" if depth == 0 else "string"

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required", ()) if isinstance(name, str)]
        chosen = list(dict.fromkeys(required))
        optional = [name for name in properties if name not in chosen]
        floor = schema.get("minProperties", 0)
        ceiling = schema.get("maxProperties", len(properties) + floor)
        for name in optional:
            wanted = len(chosen) < floor or (depth < MAX_DEPTH and self.rng.random() < 0.5)
            if wanted and len(chosen) < ceiling:
                chosen.append(name)
        out = {name: self.value(properties.get(name, self.extra(schema)), depth + 1) for name in chosen}
        while len(out) < floor:
            out[f"extra_{len(out)}"] = self.value(self.extra(schema), depth + 1)
        return out

    @staticmethod
    def extra(schema: Mapping[str, Any]) -> Any:
        """The schema of a key beyond ``properties`` (``additionalProperties``, else a string)."""
        extra = schema.get("additionalProperties")
        return extra if isinstance(extra, Mapping) else {"type": "string"}

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems", ()))
        low = max(schema.get("minItems", 0), 0)
        high = schema.get("maxItems", low + 3)
        count = low if depth >= MAX_DEPTH else self.rng.randint(low, max(low, min(high, low + 3)))
        items = schema.get("items", {})
        out: list[Any] = []
        for attempt in range(count * 10 + 10):
            if len(out) >= count:
                break
            item = self.value(prefix[len(out)] if len(out) < len(prefix) else items, depth + 1)
            if not schema.get("uniqueItems") or item not in out:
                out.append(item)
        return out

    def _string(self, schema: Mapping[str, Any], depth: int) -> str:
        if "pattern" in schema:
            return rstr.Rstr(self.rng).xeger(schema["pattern"])
        made = _FORMATS.get(schema.get("format", ""))
        if made is not None:
            return made(self.rng)
        low = schema.get("minLength", 0)
        high = schema.get("maxLength", max(low, 40))
        text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 3)))
        while len(text) < low:
            text += self.rng.choice(string.ascii_lowercase)
        return text[:high]

    def _integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first, last = -(-low // step), high // step
            return step * self.rng.randint(first, max(first, last))
        return self.rng.randint(low, max(low, high))

    def _number(self, schema: Mapping[str, Any], depth: int) -> float | int:
        if isinstance(schema.get("multipleOf"), int):
            return self._integer(schema, depth)
        low, high = _bounds(schema, integer=False)
        value = round(self.rng.uniform(low, high), 2)
        return value if low <= value <= high else low

    def _boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None


def _bounds(schema: Mapping[str, Any], integer: bool) -> tuple[Any, Any]:
    """The inclusive ``(low, high)`` a number may take (exclusive bounds moved inwards)."""
    nudge = 1 if integer else 0.01
    low = schema.get("minimum", 0 if "maximum" not in schema else schema["maximum"] - 100)
    high = schema.get("maximum", low + 100)
    if "exclusiveMinimum" in schema:
        low = max(low, schema["exclusiveMinimum"] + nudge)
    if "exclusiveMaximum" in schema:
        high = min(high, schema["exclusiveMaximum"] - nudge)
    if integer:
        return int(-(-low // 1)), int(high // 1)
    return low, max(low, high)


def _without(schema: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in keys}


def _merge(base: Mapping[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """``allOf``: the keywords of both; ``properties`` and ``required`` combined."""
    out = {**part, **base}
    out["properties"] = {**part.get("properties", {}), **base.get("properties", {})}
    out["required"] = list(dict.fromkeys([*base.get("required", ()), *part.get("required", ())]))
    if not out["properties"] and not out["required"]:
        del out["properties"], out["required"]
    return out


def _stamp(rng: random.Random) -> tuple[int, int, int, int, int, int]:
    return (rng.randint(2000, 2030), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
            rng.randint(0, 59), rng.randint(0, 59))


_FORMATS = {
    "date-time": lambda rng: "%04d-%02d-%02dT%02d:%02d:%02dZ" % _stamp(rng),
    "date": lambda rng: "%04d-%02d-%02d" % _stamp(rng)[:3],
    "time": lambda rng: "%02d:%02d:%02dZ" % _stamp(rng)[3:],
    "email": lambda rng: f"{rng.choice(WORDS)}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(WORDS)}",
    "hostname": lambda rng: f"{rng.choice(WORDS)}.example.com",
    "ipv4": lambda rng: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
    "uuid": lambda rng: "%08x-%04x-4%03x-8%03x-%012x" % (
        rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12), rng.getrandbits(12), rng.getrandbits(48)),
}
