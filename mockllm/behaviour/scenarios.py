"""
Scenarios: discovery, definitions and the runner behind the public :mod:`mockllm.scenario`.

Scenario authors import from :mod:`mockllm.scenario` only; this module is its implementation.

Writing one
-----------
A scenario is any object providing :class:`IScenario`, placed at module level
in a Python file inside a ``scenarios/`` directory on ``sys.path`` (or in the
directory given with ``--scenario-path DIR``)::

    from zope.interface import implementer
    from mockllm.scenario import IScenario, Parameter, PlanPart, StatusFault, whole

    @implementer(IScenario)
    class EveryNth:
        name = "every-nth"
        description = "Every Nth request of each key fails with a 500."
        parameters = {"n": Parameter(5, "Which requests fail (every n-th)", whole(1))}

        def plan(self, request, caller, state):
            seen = state.storage["seen"] = state.storage.get("seen", 0) + 1
            return PlanPart(fault=StatusFault(500)) if seen % state.params["n"] == 0 else PlanPart()

    every_nth = EveryNth()

The object must stay stateless: anything it must remember goes in
``state.storage`` (one dict per scenario and client key, emptied by
:meth:`ScenarioRunner.reset`), and every random choice uses ``state.rng`` so
``--seed`` reproduces it.  Leave a :class:`~mockllm.scenario.PlanPart` field
``None`` to have no opinion: the :data:`COMMON` parameters, then the
configuration, decide it.  Request controls (``?fail=``, ``X-Mock-*``) always
win over what a scenario says.

Discovery is :func:`discover`; :class:`ScenarioRunner` is the app's scenario
chooser and the admin API's handle on the current scenario.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import pkgutil
import random
import secrets
import sys
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any, Iterable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer

from mockllm.behaviour.caller import Caller
from mockllm.behaviour.errors import APIError
from mockllm.behaviour.plan import NO_OPINION, PlanPart, StatusFault, latency_timing
from mockllm.behaviour.request import CompletionRequest
from mockllm.config.checks import (
    MAX_MS,
    Check,
    apply,
    boolean,
    decimal,
    latency,
    milliseconds,
    optional,
    statuses,
    text,
    texts,
    whole,
)
from mockllm.config.model import ResponsesConfig
from mockllm.frozen import Frozen, frozen


class IScenario(IPlugin):
    """
    A named behaviour for completion requests.

    Providers are found with ``twisted.plugin.getPlugins(IScenario, scenarios)``:
    put an instance at module level in a file in a ``scenarios/`` directory.
    (``IScenario`` extends ``IPlugin``, so ``@implementer(IScenario)`` is all
    Twisted's plugin system needs.)
    """

    name = Attribute("The name ``--scenario`` and ``X-Mock-Scenario`` use (str, unique).")
    description = Attribute("One line saying what the scenario does (str).")
    parameters = Attribute(
        "Mapping of parameter name to :class:`Parameter` (default, one-line description, check). "
        "The values in effect arrive as ``state.params``; ``[scenarios.NAME]`` tables and the admin "
        "API may change them."
    )

    def plan(request: CompletionRequest, caller: Caller, state: ScenarioState) -> PlanPart:
        """
        Decide this request's scenario layer.

        :param request: the validated request (model, stream, texts, body).
        :param caller: who sent it (``caller.key`` is the per-client state key).
        :param state: the seeded ``rng``, the ``clock``, the effective ``params``, this
            key's mutable ``storage`` and the configuration's ``responses`` defaults.
        :return: a :class:`~mockllm.scenario.PlanPart`; ``None`` fields mean no opinion.
        """


@frozen(slots=False)
class Parameter(Frozen):
    """One scenario parameter: its default, a one-line description and the check its values pass."""

    default: Any
    description: str
    #: ``value -> value``, raising ``ValueError("<what was expected>")``; inferred from the default if omitted.
    check: Check | None = None

    def validate(self, value: Any, where: str) -> Any:
        """``value`` checked (``ValueError`` names ``where``)."""
        return apply(self.check or _inferred_check(self.default), value, where)


def _inferred_check(default: Any) -> Check:
    """The check a parameter gets from the type of its default."""
    if isinstance(default, bool):
        return boolean()
    if isinstance(default, int):
        return whole(None)
    if isinstance(default, float):
        return decimal(None)
    if isinstance(default, str):
        return text()
    if isinstance(default, (list, tuple)):
        return texts()
    return lambda value: value


#: Parameters every scenario has; they decide the fields a scenario's plan leaves ``None``.
COMMON: Mapping[str, Parameter] = MappingProxyType(
    {
        "default_delay_ms": Parameter(
            None,
            "Delay before answering, in ms (null: [responses] default_delay_ms)",
            optional(milliseconds(), "use [responses] default_delay_ms"),
        ),
        "error_rate_percent": Parameter(
            None,
            "Percent of requests answered with an error (null: [responses] error_rate_percent)",
            optional(decimal(0, 100), "use [responses] error_rate_percent"),
        ),
        "error_statuses": Parameter(
            (429, 500, 503), "The statuses those errors are drawn from, evenly", statuses()
        ),
        "latency": Parameter(
            None,
            "Time to first token, inter-token latency, jitter and load: a table of ttft_ms, itl_ms, jitter, "
            "jitter_pct, load_ms_per_stream (null: the model's)",
            optional(latency(), "use the model's latency"),
        ),
    }
)

#: Keys of a ``[scenarios.NAME]`` table that are not parameters.
TABLE_KEYS = ("name", "description", "base")

#: How many client keys' state (storage and random sequences) a :class:`ScenarioRunner` keeps.
DEFAULT_MAX_KEYS = 10_000


@dataclass
class ScenarioState:
    """What :meth:`IScenario.plan` gets besides the request: see the interface."""

    #: Seeded per scenario and key: the same seed and requests give the same draws.
    rng: random.Random
    clock: IReactorTime
    #: The effective parameters (read-only).
    params: Mapping[str, Any]
    #: This scenario's mutable storage for this key.
    storage: dict[str, Any]
    #: The configuration's ``[responses]`` (the layer below scenarios).
    responses: ResponsesConfig
    #: The caller's key.
    key: str


@frozen(slots=False)
class Definition(Frozen):
    """A selectable scenario: a plugin and the parameters it runs with under ``name``."""

    name: str
    scenario: Any
    title: str
    description: str
    params: Mapping[str, Any]
    #: The plugin's own name (differs from ``name`` for ``[scenarios.NAME]`` with ``base``).
    base: str

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "base": self.base,
            "parameters": _jsonable(self.params),
        }


class UnknownScenario(KeyError, ValueError):
    """No scenario has that name (a ``KeyError`` and a ``ValueError``; ``str()`` is the message)."""

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def among(cls, name: str, known: Iterable[str]) -> "UnknownScenario":
        """The error for ``name``, listing the ``known`` names."""
        return cls(f"unknown scenario {name!r}; known scenarios: {', '.join(sorted(known))}")


# --- discovery ------------------------------------------------------------------------------


@dataclass
class Discovery:
    """What :func:`discover` found: scenarios by name, and problems by module name."""

    scenarios: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def report(self) -> list[str]:
        """One readable line per problem."""
        return [f"scenario module {name}: {problem}" for name, problem in sorted(self.problems.items())]


def _scenarios_package() -> ModuleType:
    import scenarios

    return scenarios


def _plugins_with_problems(package: ModuleType) -> tuple[list[Any], dict[str, str]]:
    """``getPlugins(IScenario, package)``, with each module that fails to import reported once, here.

    Each module is imported first; one that fails is recorded by name and stands in
    ``sys.modules`` as an empty module while Twisted looks for plugins, so Twisted neither
    imports it again nor logs its traceback (twice, before logging starts) as well.
    """
    problems: dict[str, str] = {}
    stand_ins: list[str] = []
    for module in pkgutil.iter_modules(package.__path__):
        name = f"{package.__name__}.{module.name}"
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as error:  # any error in a drop-in module: report it, load the rest
            problems[name] = f"{type(error).__name__}: {error}"
            sys.modules[name] = ModuleType(name)
            setattr(package, module.name, sys.modules[name])
            stand_ins.append(module.name)
    try:
        found = list(getPlugins(IScenario, package))
    finally:
        for short in stand_ins:
            del sys.modules[f"{package.__name__}.{short}"]
            delattr(package, short)
    return found, problems


#: Why a drop-in module that an earlier scenario path entry already provides is not loaded.
SHADOWED = "shadowed by a module of the same name earlier on the scenario path; rename the file"


def _shadowed(package: ModuleType, extras: list[str]) -> dict[str, str]:
    """
    A problem for each ``*.py`` module in ``extras`` whose name an earlier entry of the
    package's path (or an earlier extra) already provides: Python imports that one instead.
    Keyed by module name and path, as :meth:`Discovery.report` shows them.
    """
    provided = {module.name for module in pkgutil.iter_modules(package.__path__)}
    problems: dict[str, str] = {}
    for directory in extras:
        for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*.py"))):
            name = os.path.basename(path)[:-3]
            if name in provided:
                problems[f"{package.__name__}.{name} ({path})"] = SHADOWED
        provided |= {module.name for module in pkgutil.iter_modules([directory])}
    return problems


def discover(paths: Iterable[str] = (), package: ModuleType | None = None) -> Discovery:
    """
    Every :class:`IScenario` in the ``scenarios`` package, plus modules directly in ``paths``.

    A module that fails to import is recorded in ``problems`` and the rest still load; so is a
    second scenario with a name already taken (the one in the first module by name is kept),
    and a module in ``paths`` named like one earlier on the path (it is never imported).
    """
    package = package or _scenarios_package()
    saved = list(package.__path__)
    extras = [p for p in dict.fromkeys(map(os.path.abspath, paths)) if p not in saved]
    shadowed = _shadowed(package, extras)
    package.__path__.extend(extras)
    try:
        found, problems = _plugins_with_problems(package)
    finally:
        package.__path__[:] = saved
    problems.update(shadowed)
    discovery = Discovery(problems=problems)
    for plugin in sorted(found, key=lambda p: (type(p).__module__, p.name)):
        if plugin.name in discovery.scenarios:
            problems[type(plugin).__module__] = f"scenario name {plugin.name!r} is already taken; ignored"
        else:
            discovery.scenarios[plugin.name] = plugin
    return discovery


# --- definitions ------------------------------------------------------------------------------


def parameters_of(scenario: Any) -> dict[str, Parameter]:
    """The :data:`COMMON` parameters with the scenario's own over them."""
    return {**COMMON, **dict(scenario.parameters)}


def check_params(scenario: Any, given: Mapping[str, Any], where: str, start: Mapping[str, Any] | None = None) -> dict:
    """``start`` (default: the defaults) with ``given`` checked and applied over it."""
    known = parameters_of(scenario)
    params = dict(start) if start is not None else {k: p.default for k, p in known.items()}
    for key, value in given.items():
        if key not in known:
            raise ValueError(f"{where} {key}: unknown parameter of {scenario.name!r}; expected one of {', '.join(known)}")
        params[key] = known[key].validate(value, f"{where} {key}")
    return params


def _plugin_definition(plugin: Any) -> Definition:
    params = check_params(plugin, {}, plugin.name)
    return Definition(plugin.name, plugin, plugin.name, plugin.description, MappingProxyType(params), plugin.name)


def _table_definition(name: str, table: Mapping[str, Any], plugins: Mapping[str, Any]) -> Definition:
    """The scenario a ``[scenarios.NAME]`` table defines."""
    where = f"[scenarios.{name}]"
    meta = {key: apply(text(), table[key], f"{where} {key}") for key in TABLE_KEYS if key in table}
    base = meta.get("base", name if name in plugins else "default")
    if base not in plugins:
        raise ValueError(f"{where} base: expected one of {', '.join(sorted(plugins))}, got {base!r}")
    plugin = plugins[base]
    given = {k: v for k, v in table.items() if k not in TABLE_KEYS}
    params = check_params(plugin, given, where)
    title = meta.get("name", name)
    inherited = plugin.description if name == base else f"{title} (from the configuration, based on {base!r})"
    description = meta.get("description", inherited)
    return Definition(name, plugin, title, description, MappingProxyType(params), base)


def define(plugins: Mapping[str, Any], tables: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Definition]:
    """
    The selectable scenarios: each plugin under its own name, then each ``[scenarios.NAME]`` table.

    A table named like a plugin re-parameterises it; another name defines a new scenario
    based on the plugin named by its ``base`` key (default: ``default``).  Bad tables raise
    ``ValueError`` naming the table and key.
    """
    definitions = {name: _plugin_definition(plugin) for name, plugin in plugins.items()}
    for name, table in (tables or {}).items():
        definitions[name] = _table_definition(name, table, plugins)
    return definitions


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with tuples as lists, checked to be JSON-serialisable."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    json.dumps(out)
    return out


def listing(definitions: Mapping[str, Definition]) -> str:
    """``--list-scenarios`` output: each name, its one-line description and its parameters."""
    common = ", ".join(f"{key} ({p.description})" for key, p in COMMON.items())
    lines = [f"Every scenario also takes: {common}.", ""]
    for name in sorted(definitions):
        definition = definitions[name]
        lines.append(f"{name}: {definition.description}")
        own = parameters_of(definition.scenario)
        shown = _jsonable(definition.params)
        for key, value in shown.items():
            if key not in COMMON or definition.params[key] != COMMON[key].default:
                lines.append(f"    {key} = {json.dumps(value)}  -- {own[key].description}")
    return "\n".join(lines)


# --- running ------------------------------------------------------------------------------------


def unknown_scenario_error(name: str, known: Iterable[str]) -> APIError:
    """The 400 for an ``X-Mock-Scenario`` naming no scenario."""
    return APIError(
        400,
        f"Unknown scenario {name!r} in X-Mock-Scenario; known scenarios: {', '.join(sorted(known))}.",
        "invalid_request_error",
        "X-Mock-Scenario",
        "unknown_scenario",
    )


def common_layer(part: PlanPart, state: ScenarioState) -> PlanPart:
    """
    ``part`` with the common parameters (then the configuration) deciding its empty delay,
    fault and timing (``latency``), and this key's generator for the request's own draws (reply,
    jitter) unless it has a seed of its own.
    """
    params, responses = state.params, state.responses
    filled: dict[str, Any] = {}
    if part.delay is None and params["default_delay_ms"] is not None:
        filled["delay"] = params["default_delay_ms"] / 1000
    if part.timing is None and params["latency"] is not None:
        filled["timing"] = latency_timing(params["latency"])
    if part.fault is None:
        rate = params["error_rate_percent"]
        rate = responses.error_rate_percent if rate is None else rate
        if rate > 0 and state.rng.random() * 100 < rate:
            filled["fault"] = StatusFault(state.rng.choice(params["error_statuses"]))
    if part.seed is None and part.draws is None:
        filled["draws"] = state.rng
    if part is NO_OPINION:  # most requests: the filled fields are the whole layer (no copy to make)
        return PlanPart(**filled)
    return replace(part, **filled) if filled else part


class IScenarioControl(Interface):
    """What the admin API switches, resets and describes (a :class:`ScenarioRunner`)."""

    current = Attribute("The current scenario's name.")

    def switch(name, params=None):
        """Make ``name`` current with ``params``; ``KeyError``/``ValueError`` with a clear message if bad."""

    def reset():
        """Forget per-client state (counters, "first N fail")."""

    def describe():
        """The current scenario, as JSON."""


@implementer(IScenarioControl)
class ScenarioRunner:
    """
    The app's scenario chooser, and what the admin API switches and resets.

    Plans each request with the current scenario, or the one named by
    ``X-Mock-Scenario``.  Randomness is a ``random.Random`` per scenario and
    key, seeded from ``seed``; storage is a dict per scenario and key.  Only
    the ``max_keys`` most recently seen keys keep theirs: a key seen again
    after falling out starts afresh, as after :meth:`reset`.
    """

    def __init__(
        self,
        definitions: Mapping[str, Definition],
        clock: IReactorTime,
        current: str = "default",
        seed: int | None = None,
        responses: ResponsesConfig | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys: expected a whole number >= 1, got {max_keys!r}")
        self.definitions = dict(definitions)
        #: How many keys' state is kept (the least recently seen go first).
        self.max_keys = max_keys
        self.clock = clock
        self.seed = seed if seed is not None else secrets.randbits(64)
        self.responses = responses or ResponsesConfig()
        self._current = self._lookup(current)
        self._current_params = self._current.params
        #: key -> scenario name -> (its random sequence, its storage); least recently seen key first.
        self._keys: OrderedDict[str, dict[str, ScenarioState]] = OrderedDict()

    def _lookup(self, name: str) -> Definition:
        try:
            return self.definitions[name]
        except KeyError:
            raise UnknownScenario.among(name, self.definitions) from None

    @property
    def current(self) -> str:
        """The name of the scenario requests get unless they name another."""
        return self._current.name

    def switch(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        """Make ``name`` current, with ``params`` over its parameters; raise ``ValueError`` if either is bad."""
        definition = self._lookup(name)
        checked = check_params(definition.scenario, params or {}, f"scenario {name!r}:", definition.params)
        self._current, self._current_params = definition, MappingProxyType(checked)

    def reset(self) -> None:
        """Forget every key's storage (counters, token buckets) and restart every random sequence."""
        self._keys.clear()

    def describe(self) -> dict[str, Any]:
        """The current scenario: name, title, description, base, effective parameters; plus what is available."""
        summary = replace(self._current, params=self._current_params).describe()
        summary["available"] = sorted(self.definitions)
        return summary

    def state_for(self, definition: Definition, key: str) -> ScenarioState:
        """The state ``definition`` sees for requests with ``key``."""
        slots = self._slots_of(key)
        params = self._current_params if definition is self._current else definition.params
        state = slots.get(definition.name)
        if state is None:
            rng = random.Random(f"{self.seed}/{definition.name}/{key}")
            state = slots[definition.name] = ScenarioState(rng, self.clock, params, {}, self.responses, key)
        elif state.params is not params:  # switched since: the same sequence and storage, the new parameters
            state = slots[definition.name] = replace(state, params=params)
        return state

    def _slots_of(self, key: str) -> dict[str, ScenarioState]:
        """``key``'s state by scenario name, now the most recently seen; the least recent key may fall out."""
        slots = self._keys.get(key)
        if slots is not None:
            self._keys.move_to_end(key)
            return slots
        slots = self._keys[key] = {}
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return slots

    @property
    def keys_kept(self) -> int:
        """How many keys' state is kept now (at most :attr:`max_keys`)."""
        return len(self._keys)

    def plan(self, request: CompletionRequest, caller: Caller) -> tuple[str, PlanPart]:
        """The scenario's name and its layer of the plan for this request."""
        if caller.scenario is not None and caller.scenario not in self.definitions:
            raise unknown_scenario_error(caller.scenario, self.definitions)
        definition = self.definitions[caller.scenario] if caller.scenario is not None else self._current
        state = self.state_for(definition, caller.key)
        part = definition.scenario.plan(request, caller, state)
        return definition.name, common_layer(part, state)


__all__ = [
    "COMMON",
    "MAX_MS",
    "Definition",
    "Discovery",
    "IScenario",
    "Parameter",
    "ScenarioRunner",
    "ScenarioState",
    "UnknownScenario",
    "boolean",
    "decimal",
    "define",
    "discover",
    "listing",
    "milliseconds",
    "optional",
    "statuses",
    "text",
    "texts",
    "whole",
]
