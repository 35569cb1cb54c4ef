"""
Response rules: an ordered list of "when a request looks like this, answer like that".

A rule is a flat table (a ``[[rules]]`` table in the configuration, or an object in
``PUT /__admin/rules``).  It matches on any of :data:`MATCH_KEYS` (all those it gives must
match; a rule giving none matches every request):

- ``model``: the request's model, exactly;
- ``path``: the request's path, exactly (``/v1/chat/completions``);
- ``message``: a regular expression searched in the last user message (its first 64 KiB);
- ``tools``: ``true``: tools are offered; ``false``: none are;
- ``header``: ``{name = "X-Tenant", value = "^acme"}``, a regular expression searched in that
  header's values.

It answers with any of :data:`ANSWER_KEYS` (``content``, ``tool_call = {name, arguments}``,
``finish_reason``) and any request control (``fail``, ``fail_chunk``, ``delay``,
``retry_after``, ...: every control :func:`~mockllm.behaviour.controls.parse_controls`
knows, read from the rule's own keys, so new controls work in rules as they are added).
The first rule that matches makes the plan layer between the request's controls and the
scenario (request controls > rule > scenario > configuration); no match, no opinion.

Rules are checked when loaded (:func:`parse_rules`); a problem is a :class:`RuleError`
naming the rule's index and key.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from mockllm.behaviour.content import EXACT_CHARS, draw_reply, tokenize
from mockllm.behaviour.controls import parse_controls
from mockllm.behaviour.errors import APIError
from mockllm.behaviour.plan import NO_OPINION, PlanPart
from mockllm.behaviour.reply import Choice, Reply, ToolCall
from mockllm.behaviour.request import CompletionRequest
from mockllm.config.checks import Check, apply, boolean, one_of, pattern, text
from mockllm.config.model import ResponsesConfig
from mockllm.dialects.openai import new_id
from mockllm.frozen import Frozen, frozen

#: What a rule may match on.
MATCH_KEYS = ("model", "path", "message", "tools", "header")
#: What a rule may answer with besides controls.
ANSWER_KEYS = ("content", "tool_call", "finish_reason")
#: The finish reasons a rule may give.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")

#: Values a header reads as: ``header(name)`` -> that header's values.
HeaderValues = Callable[[str], list[str]]


class RuleError(ValueError):
    """A rule that cannot be used; ``param`` names it: ``rules[2].message``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _header() -> Check:
    name, value = text(), pattern()

    def check(given: Any) -> tuple[str, re.Pattern[str]]:
        if not isinstance(given, dict) or set(given) != {"name", "value"}:
            raise ValueError('a table {name = "Header-Name", value = "regular expression"}')
        return name(given["name"]), value(given["value"])

    return check


def _tool_call() -> Check:
    name = text()

    def check(given: Any) -> tuple[str, str]:
        if not isinstance(given, dict) or "name" not in given or set(given) - {"name", "arguments"}:
            raise ValueError('a table {name = "function", arguments = {...}} (arguments optional)')
        arguments = given.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError("arguments that are a table (a JSON object)")
        return name(given["name"]), json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)

    return check


_CHECKS: dict[str, Check] = {
    "model": text(),
    "path": text(),
    "message": pattern(),
    "tools": boolean(),
    "header": _header(),
    "content": text(allow_empty=True),
    "tool_call": _tool_call(),
    "finish_reason": one_of(FINISH_REASONS),
}


@frozen(slots=False)
class Rule(Frozen):
    """One checked rule: what it matches and what it answers."""

    #: The rule as it was given (what ``GET /__admin/rules`` shows).
    source: Mapping[str, Any]
    checked: Mapping[str, Any]
    #: The plan layer of its controls (delay, fault).
    controls: PlanPart

    def matches(self, request: CompletionRequest, path: str, header: HeaderValues) -> bool:
        """Whether every condition the rule gives holds for this request."""
        given = self.checked
        if "model" in given and request.model != given["model"]:
            return False
        if "path" in given and path != given["path"]:
            return False
        if "tools" in given and offers_tools(request) != given["tools"]:
            return False
        if "message" in given and not given["message"].search(last_user_text(request)[:EXACT_CHARS]):
            return False
        if "header" in given:
            name, expression = given["header"]
            return any(expression.search(value) for value in header(name))
        return True

    def part(self, request: CompletionRequest, ids: random.Random) -> PlanPart:
        """The plan layer this rule gives ``request``: its controls and its content."""
        given = self.checked
        content, call, finish = given.get("content"), given.get("tool_call"), given.get("finish_reason")
        if call is None and finish is None:
            return replace(self.controls, content=content) if content is not None else self.controls
        if content is None and call is None:
            content = draw_reply(random.Random(request.last_text), request.last_text)
        calls = () if call is None else (ToolCall(new_id("call_", ids), *call),)
        choice = Choice(tuple(tokenize(content or "")), calls, finish or ("tool_calls" if calls else "stop"))
        return replace(self.controls, content=Reply((choice,)))


def offers_tools(request: CompletionRequest) -> bool:
    """Whether the request offers the model tools (or functions)."""
    return bool(request.tools or request.body.get("tools") or request.body.get("functions"))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def last_user_text(request: CompletionRequest) -> str:
    """The text of the last ``role: "user"`` message; the last text for other dialects (a prompt)."""
    messages = request.body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
    return request.last_text


class _Recording:
    """A control lookup over a rule's keys that remembers which names it was asked for."""

    def __init__(self, rule: Mapping[str, Any]) -> None:
        self._rule = rule
        self.asked: set[str] = set()

    def __call__(self, name: str) -> str | None:
        self.asked.add(name)
        value = self._rule.get(name)
        if value is None or isinstance(value, bool):
            return None if value is None else str(value).lower()
        return str(value)


def parse_rule(raw: Any, index: int, max_delay_ms: int, timeout_s: float) -> Rule:
    """Check one rule; :class:`RuleError` names ``rules[index]`` and the key at fault."""
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected a table (a JSON object), got {raw!r}", where)
    checked = {}
    for key in (*MATCH_KEYS, *ANSWER_KEYS):
        if key in raw:
            try:
                checked[key] = apply(_CHECKS[key], raw[key], f"{where}.{key}")
            except ValueError as error:
                raise RuleError(str(error), f"{where}.{key}") from None
    lookup = _Recording(raw)
    try:
        controls = parse_controls(lookup, max_delay_ms, timeout_s)
    except APIError as error:
        raise RuleError(f"{where}.{error.param}: {error.message}", f"{where}.{error.param}") from None
    _check_keys(raw, where, lookup.asked)
    if not (set(raw) - set(MATCH_KEYS)):
        raise RuleError(
            f"{where}: says nothing to answer with; give content, tool_call, finish_reason or a control such as fail",
            where,
        )
    return Rule(dict(raw), checked, controls)


def _check_keys(raw: Mapping[str, Any], where: str, controls: set[str]) -> None:
    """Refuse a key that is neither a condition, an answer nor a control."""
    known = (*MATCH_KEYS, *ANSWER_KEYS, *sorted(controls))
    for key in raw:
        if key not in known:
            raise RuleError(f"{where}.{key}: unknown key; expected one of {', '.join(known)}", f"{where}.{key}")


def parse_rules(raws: Iterable[Any], max_delay_ms: int, timeout_s: float) -> tuple[Rule, ...]:
    """Check every rule, in order (the first bad one raises :class:`RuleError`)."""
    return tuple(parse_rule(raw, index, max_delay_ms, timeout_s) for index, raw in enumerate(raws))


class RuleBook:
    """The rules in effect, first match wins; replaced or cleared by the admin API."""

    def __init__(self, rules: tuple[Rule, ...], ids: random.Random, max_delay_ms: int, timeout_s: float) -> None:
        """``ids``: where tool call ids come from; ``max_delay_ms``/``timeout_s``: as for request controls."""
        self._rules = rules
        self._ids = ids
        self._max_delay_ms = max_delay_ms
        self._timeout_s = timeout_s

    @classmethod
    def of(cls, raws: Iterable[Any], responses: ResponsesConfig, ids: random.Random) -> "RuleBook":
        """The rules ``raws`` (the configuration's ``[[rules]]``), checked with ``responses``' caps."""
        max_delay_ms, timeout_s = responses.max_delay_ms, responses.timeout_ms / 1000
        return cls(parse_rules(raws, max_delay_ms, timeout_s), ids, max_delay_ms, timeout_s)

    def plan(self, request: CompletionRequest, path: str, header: HeaderValues) -> PlanPart:
        """The first matching rule's plan layer, or no opinion."""
        for rule in self._rules:
            if rule.matches(request, path, header):
                return rule.part(request, self._ids)
        return NO_OPINION

    def replace(self, raws: Iterable[Any]) -> None:
        """Check ``raws`` and make them the rules (nothing changes if one is bad: :class:`RuleError`)."""
        self._rules = parse_rules(raws, self._max_delay_ms, self._timeout_s)

    def clear(self) -> int:
        """Drop every rule; how many there were."""
        count, self._rules = len(self._rules), ()
        return count

    def describe(self) -> list[dict[str, Any]]:
        """The rules as given, in order."""
        return [dict(rule.source) for rule in self._rules]
